package main

import (
	"context"
	"log/slog"
	"net/http/httputil"
	"net/url"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/mcpserver"
)

func (c *cli) serve(ctx context.Context) error {
	if err := app.Migrate(ctx, c.cfg, c.cfg.Logger(c.stderr)); err != nil {
		return err
	}
	a, err := c.openWith(ctx, app.Options{Parts: app.PartServer, MakeMasterKey: true})
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Serve(ctx, nil)
}

// mcp serves the MCP tools over stdio: stdout carries the protocol alone,
// so everything else (the log) goes to stderr.
func (c *cli) mcp(ctx context.Context, o mcpCmd) error {
	if o.URL != "" {
		return c.mcpRemote(ctx, o)
	}
	if err := app.Migrate(ctx, c.cfg, c.cfg.Logger(c.stderr)); err != nil {
		return err
	}
	a, err := c.openWith(ctx, app.Options{Parts: app.PartServer, MakeMasterKey: true})
	if err != nil {
		return err
	}
	defer a.Close()
	if c.cfg.AdminKey != "" && o.Key == "" {
		c.cfg.Logger(c.stderr).Warn("the API has keys (ARQ_ADMIN_KEY) but arq mcp was given none (ARQ_MCP_KEY, --key): every tool call will be refused")
	}
	return a.ServeMCP(ctx, &mcp.StdioTransport{}, o.Key)
}

// mcpRemote serves the MCP tools over stdio, each call a request to the
// ARQ server at o.URL: no database is opened here.
func (c *cli) mcpRemote(ctx context.Context, o mcpCmd) error {
	u, err := url.Parse(o.URL)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return usagef("--url %q: want the server's base URL, http(s)://host[:port]", o.URL)
	}
	log := c.cfg.Logger(c.stderr)
	remote := httputil.NewSingleHostReverseProxy(u)
	remote.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelError)
	log.Info("arq serving MCP", "remote", u.Redacted(), "version", app.Version())
	return mcpserver.New(remote, mcpserver.Options{Key: o.Key, Version: app.Version(), Log: log}).Run(ctx, &mcp.StdioTransport{})
}

func (c *cli) migrate(ctx context.Context) error {
	return app.Migrate(ctx, c.cfg, c.cfg.Logger(c.stderr))
}

// project runs the projections without the API, so API servers and
// projection workers scale apart.
func (c *cli) project(ctx context.Context) error {
	a, err := c.open(ctx, app.PartProjector)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Project(ctx)
}
