package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is what an arq process needs to know, from ARQ_* environment
// variables with command-line flags overriding them.
type Config struct {
	DatabaseURL string
	RedisURL    string
	HTTPAddr    string
	DBMaxConns  int
	LogLevel    slog.Level
	LogFormat   string
	// Projections runs the projection engine inside `arq serve`.
	Projections bool
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration
}

func defaultConfig() Config {
	return Config{
		DatabaseURL:     "postgres://postgres@127.0.0.1:5432/arq?sslmode=disable",
		RedisURL:        "redis://127.0.0.1:6379/0",
		HTTPAddr:        ":8080",
		DBMaxConns:      20,
		LogLevel:        slog.LevelInfo,
		LogFormat:       "json",
		Projections:     true,
		ShutdownTimeout: 30 * time.Second,
	}
}

// envConfig reads the environment over the defaults.
func envConfig(getenv func(string) string) (Config, error) {
	c := defaultConfig()
	str := func(key string, dst *string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	str("ARQ_DATABASE_URL", &c.DatabaseURL)
	str("ARQ_REDIS_URL", &c.RedisURL)
	str("ARQ_HTTP_ADDR", &c.HTTPAddr)
	str("ARQ_LOG_FORMAT", &c.LogFormat)
	if v := getenv("ARQ_DB_MAX_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			return c, fmt.Errorf("ARQ_DB_MAX_CONNS=%q: want a whole number of at least 2", v)
		}
		c.DBMaxConns = n
	}
	if v := getenv("ARQ_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("ARQ_LOG_LEVEL=%q: want debug, info, warn or error", v)
		}
	}
	return c, nil
}

// bindCommon registers the flags every command shares; a flag overrides
// its environment variable.
func (c *Config) bindCommon(fs *flag.FlagSet) {
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "Postgres URL (ARQ_DATABASE_URL)")
	fs.Func("log-level", "debug, info, warn or error (ARQ_LOG_LEVEL)", func(s string) error {
		return c.LogLevel.UnmarshalText([]byte(s))
	})
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or text (ARQ_LOG_FORMAT)")
}

func (c *Config) bindServe(fs *flag.FlagSet) {
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL (ARQ_REDIS_URL)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "address the HTTP API listens on (ARQ_HTTP_ADDR)")
	fs.IntVar(&c.DBMaxConns, "db-max-conns", c.DBMaxConns, "largest number of Postgres connections for commands and reads (ARQ_DB_MAX_CONNS)")
}

func (c Config) validate() error {
	u, err := url.Parse(c.DatabaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("database url %q: want postgres://user@host:port/database", c.DatabaseURL)
	}
	if strings.Trim(u.Path, "/") == "" {
		return fmt.Errorf("database url %q names no database", c.DatabaseURL)
	}
	if r, err := url.Parse(c.RedisURL); err != nil || (r.Scheme != "redis" && r.Scheme != "rediss") {
		return fmt.Errorf("redis url %q: want redis://host:port/db", c.RedisURL)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("log format %q: want json or text", c.LogFormat)
	}
	if c.DBMaxConns < 2 {
		return fmt.Errorf("db max conns %d: want at least 2", c.DBMaxConns)
	}
	return nil
}

func (c Config) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
