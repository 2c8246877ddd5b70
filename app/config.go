package app

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Config is what an arq process needs to know, from ARQ_* environment
// variables with command-line flags overriding them.
type Config struct {
	DatabaseURL string
	RedisURL    string
	HTTPAddr    string
	DBMaxConns  int
	// AppendBatches is how many batches of appends are written at once
	// (eventstore.WithGroupCommit); 0 writes every append on its own.
	AppendBatches int
	LogLevel      slog.Level
	LogFormat     string
	// Projections runs the projection engine inside `arq serve`.
	Projections bool
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration
	// AdminKey manages API keys; empty runs the API open.
	AdminKey string
	// CORSOrigins may call the API from a browser.
	CORSOrigins []string
	// CacheEntities reads users, sessions, messages and memories by id
	// through Redis.
	CacheEntities bool
	// CacheMemoryBytes bounds the cache entries (context windows,
	// entities) each process keeps in its own memory in front of Redis;
	// 0 keeps none there.
	CacheMemoryBytes int64
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes int64
	// ReadYourWrites bounds how long a command waits for the query tables.
	ReadYourWrites time.Duration
	// MinPositionWait bounds how long a read waits for X-Arq-Min-Position.
	MinPositionWait time.Duration
	// TokenEncoding is the BPE encoding tokens are counted with.
	TokenEncoding string
	// ExpiryInterval is how often due sessions and memories are expired.
	ExpiryInterval time.Duration
	// BackgroundInterval is how often the context snapshots of new
	// assistant messages are recorded and sessions checked for summaries.
	BackgroundInterval time.Duration
	// Summarizer is "extractive" or "chat" (SummarizerURL, SummarizerModel,
	// SummarizerAPIKey then name an OpenAI-compatible endpoint).
	Summarizer       string
	SummarizerURL    string
	SummarizerModel  string
	SummarizerAPIKey string
	// SummaryThreshold is how many tokens of messages outside the newest
	// SummaryRecent tokens make a session due for a summary; a summary is
	// at most SummaryMaxTokens long (extractive).
	SummaryThreshold, SummaryRecent, SummaryMaxTokens int
	// EmbeddingDim is the length every embedding must have; 0 accepts any
	// (embeddings of another length than a query's then never match it).
	EmbeddingDim int
	// EmbeddingsURL names an OpenAI-compatible endpoint that fills in the
	// embeddings clients leave out; empty for none. EmbeddingsTimeout
	// bounds one request to it (a command waits for it).
	EmbeddingsURL, EmbeddingsModel, EmbeddingsAPIKey string
	EmbeddingsTimeout                                time.Duration
}

// DefaultConfig is the configuration of a process given no ARQ_* variable
// and no flag.
func DefaultConfig() Config {
	return Config{
		DatabaseURL:      "postgres://postgres@127.0.0.1:5432/arq?sslmode=disable",
		RedisURL:         "redis://127.0.0.1:6379/0",
		HTTPAddr:         ":8080",
		DBMaxConns:       20,
		AppendBatches:    eventstore.DefaultGroupCommit,
		LogLevel:         slog.LevelInfo,
		LogFormat:        "json",
		Projections:      true,
		CacheEntities:    true,
		CacheMemoryBytes: 64 << 20,
		ShutdownTimeout:  30 * time.Second,
		MaxBodyBytes:     1 << 20,
		ReadYourWrites:   2 * time.Second,
		MinPositionWait:  2 * time.Second,
		TokenEncoding:    "cl100k_base",
		ExpiryInterval:   time.Second,

		BackgroundInterval: time.Second,
		Summarizer:         "extractive",
		SummarizerModel:    "gpt-4o-mini",
		SummaryThreshold:   2000,
		SummaryRecent:      2000,
		SummaryMaxTokens:   256,
		EmbeddingsModel:    "text-embedding-3-small",
		EmbeddingsTimeout:  5 * time.Second,
	}
}

// FromEnv reads the ARQ_* variables getenv returns over the defaults.
func FromEnv(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
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
	if v := getenv("ARQ_APPEND_BATCHES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c, fmt.Errorf("ARQ_APPEND_BATCHES=%q: want a whole number, 0 to write every append alone", v)
		}
		c.AppendBatches = n
	}
	str("ARQ_ADMIN_KEY", &c.AdminKey)
	str("ARQ_TOKEN_ENCODING", &c.TokenEncoding)
	if v := getenv("ARQ_CORS_ORIGINS"); v != "" {
		c.CORSOrigins = SplitList(v)
	}
	if v := getenv("ARQ_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 {
			return c, fmt.Errorf("ARQ_MAX_BODY_BYTES=%q: want a whole number of at least 1024", v)
		}
		c.MaxBodyBytes = n
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{"ARQ_READ_YOUR_WRITES_TIMEOUT", &c.ReadYourWrites}, {"ARQ_MIN_POSITION_TIMEOUT", &c.MinPositionWait}, {"ARQ_EXPIRY_INTERVAL", &c.ExpiryInterval}, {"ARQ_BACKGROUND_INTERVAL", &c.BackgroundInterval}, {"ARQ_EMBEDDINGS_TIMEOUT", &c.EmbeddingsTimeout}} {
		if v := getenv(d.key); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil || x <= 0 {
				return c, fmt.Errorf("%s=%q: want a positive duration such as 2s", d.key, v)
			}
			*d.dst = x
		}
	}
	if v := getenv("ARQ_CACHE_ENTITIES"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("ARQ_CACHE_ENTITIES=%q: want true or false", v)
		}
		c.CacheEntities = b
	}
	if v := getenv("ARQ_CACHE_MEMORY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return c, fmt.Errorf("ARQ_CACHE_MEMORY_BYTES=%q: want a whole number of bytes, 0 to keep no entries in memory", v)
		}
		c.CacheMemoryBytes = n
	}
	str("ARQ_SUMMARIZER", &c.Summarizer)
	str("ARQ_SUMMARIZER_URL", &c.SummarizerURL)
	str("ARQ_SUMMARIZER_MODEL", &c.SummarizerModel)
	str("ARQ_SUMMARIZER_API_KEY", &c.SummarizerAPIKey)
	switch {
	case c.Summarizer != "extractive" && c.Summarizer != "chat":
		return c, fmt.Errorf("ARQ_SUMMARIZER=%q: want extractive or chat", c.Summarizer)
	case c.Summarizer == "chat" && c.SummarizerURL == "":
		return c, fmt.Errorf("ARQ_SUMMARIZER=chat needs ARQ_SUMMARIZER_URL (an OpenAI-compatible base URL)")
	}
	for _, d := range []struct {
		key string
		dst *int
	}{{"ARQ_SUMMARY_THRESHOLD_TOKENS", &c.SummaryThreshold}, {"ARQ_SUMMARY_RECENT_TOKENS", &c.SummaryRecent}, {"ARQ_SUMMARY_MAX_TOKENS", &c.SummaryMaxTokens}} {
		if v := getenv(d.key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return c, fmt.Errorf("%s=%q: want a whole number of at least 1", d.key, v)
			}
			*d.dst = n
		}
	}
	if v := getenv("ARQ_EMBEDDING_DIM"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > domain.MaxEmbeddingDim {
			return c, fmt.Errorf("ARQ_EMBEDDING_DIM=%q: want a whole number from 1 to %d", v, domain.MaxEmbeddingDim)
		}
		c.EmbeddingDim = n
	}
	str("ARQ_EMBEDDINGS_URL", &c.EmbeddingsURL)
	str("ARQ_EMBEDDINGS_MODEL", &c.EmbeddingsModel)
	str("ARQ_EMBEDDINGS_API_KEY", &c.EmbeddingsAPIKey)
	if v := getenv("ARQ_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("ARQ_LOG_LEVEL=%q: want debug, info, warn or error", v)
		}
	}
	return c, nil
}

// Validate checks the settings that flags may have changed after FromEnv.
func (c Config) Validate() error {
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
	if c.TokenEncoding != "cl100k_base" && c.TokenEncoding != "o200k_base" {
		return fmt.Errorf("token encoding %q: want cl100k_base or o200k_base", c.TokenEncoding)
	}
	if c.DBMaxConns < 2 {
		return fmt.Errorf("db max conns %d: want at least 2", c.DBMaxConns)
	}
	if c.AppendBatches < 0 {
		return fmt.Errorf("append batches %d: want 0 or more", c.AppendBatches)
	}
	if c.EmbeddingsURL != "" {
		if u, err := url.Parse(c.EmbeddingsURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("embeddings url %q: want an OpenAI-compatible base URL such as https://api.openai.com/v1", c.EmbeddingsURL)
		}
	}
	return nil
}

// Logger is the structured logger the configuration asks for, writing to w.
func (c Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
