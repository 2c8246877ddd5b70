package app

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"
)

// Config is what an arq process needs to know. Each field is one setting,
// described once, in its tags: the ARQ_* environment variable (var), the
// command-line flag (name), which overrides the variable, the default, the
// help and the check its value must pass (see settings.go). An empty
// variable counts as unset.
type Config struct {
	DatabaseURL string `var:"ARQ_DATABASE_URL" name:"database-url" default:"postgres://postgres@127.0.0.1:5432/arq?sslmode=disable" check:"postgres-url" group:"db" help:"the Postgres database"`
	// DBMaxConns bounds the connections for commands and reads.
	DBMaxConns int `var:"ARQ_DB_MAX_CONNS" name:"db-max-conns" default:"20" check:"min=2" group:"db" help:"Postgres connections for commands and reads"`
	// AppendBatches is how many batches of appends are written at once
	// (eventstore.WithGroupCommit); 0 writes every append on its own.
	AppendBatches int        `var:"ARQ_APPEND_BATCHES" name:"append-batches" default:"${append_batches}" check:"min=0" group:"db" help:"batches of concurrent appends written at once (group commit); 0 writes every append alone"`
	LogLevel      slog.Level `var:"ARQ_LOG_LEVEL" name:"log-level" default:"info" group:"db" help:"the least severe log lines written: debug, info, warn or error (slog's levels, such as warn+1, too)"`
	LogFormat     string     `var:"ARQ_LOG_FORMAT" name:"log-format" default:"json" check:"oneof=json|text" group:"db" help:"how log lines (on stderr) are written"`

	// MasterKey wraps the data keys that seal people's data in the log
	// (see package vault); it never enters a database. Unset, it is read
	// from MasterKeyFile, which `arq serve` and `arq migrate` make when it
	// is missing. PreviousMasterKeys still unwrap keys until `arq keys
	// rotate` has rewrapped them.
	MasterKey          string   `var:"ARQ_MASTER_KEY" name:"master-key" check:"master-key" group:"keys" help:"the master key that wraps the data keys (base64 of 32 bytes; 'arq keys new' makes one); unset, it is read from --master-key-file"`
	MasterKeyFile      string   `var:"ARQ_MASTER_KEY_FILE" name:"master-key-file" default:"${master_key_file}" group:"keys" help:"the file holding the master key when ARQ_MASTER_KEY is unset; arq serve makes it if it is missing. Keep it, and its backups, apart from the database's"`
	PreviousMasterKeys []string `var:"ARQ_PREVIOUS_MASTER_KEYS" name:"previous-master-keys" check:"master-keys" group:"keys" help:"comma-separated earlier master keys, which still unwrap the data keys 'arq keys rotate' has not rewrapped yet"`
	// LogSigningKey signs the log's checkpoints (see package ledger); it
	// never enters a database. Unset, it is read from LogSigningKeyFile,
	// which `arq serve` makes when it is missing.
	LogSigningKey     string `var:"ARQ_LOG_SIGNING_KEY" name:"log-signing-key" group:"keys" help:"the Ed25519 key that signs the log's checkpoints, in the note format ('arq log keygen' makes one); unset, it is read from --log-signing-key-file"`
	LogSigningKeyFile string `var:"ARQ_LOG_SIGNING_KEY_FILE" name:"log-signing-key-file" default:"${log_signing_key_file}" group:"keys" help:"the file holding the log's signing key when ARQ_LOG_SIGNING_KEY is unset; arq serve makes it if it is missing. Keep it apart from the database, and hand its verifier key ('arq log key') to whoever checks the log"`
	// LogCheckpointEvery is how often a checkpoint is signed while the
	// log grows; LogCheckpointDir also receives each one as a file.
	LogCheckpointEvery time.Duration `var:"ARQ_LOG_CHECKPOINT_EVERY" name:"log-checkpoint-every" default:"5s" check:"positive" group:"keys" help:"how often the log's Merkle root is signed into a checkpoint while the log grows"`
	LogCheckpointDir   string        `var:"ARQ_LOG_CHECKPOINT_DIR" name:"log-checkpoint-dir" group:"keys" help:"a directory outside the database that receives every signed checkpoint as <size>.checkpoint and latest.checkpoint (for a witness, a backup or a bucket)"`
	// LogVerifyEvery is how often the server checks the events signed
	// since its last check against the latest checkpoint;
	// LogVerifyFullEvery how often it checks the whole log.
	LogVerifyEvery     time.Duration `var:"ARQ_LOG_VERIFY_EVERY" name:"log-verify-every" default:"1m" check:"positive" group:"keys" help:"how often the server checks the events signed since its last check against the latest signed checkpoint (arq_log_verified, /readyz)"`
	LogVerifyFullEvery time.Duration `var:"ARQ_LOG_VERIFY_FULL_EVERY" name:"log-verify-full-every" default:"6h" check:"positive" group:"keys" help:"how often the server checks the whole log against the latest signed checkpoint (also at start)"`
	// KeystoreURL is the database of the key store; empty: the log's.
	KeystoreURL string `var:"ARQ_KEYSTORE_URL" name:"keystore-url" check:"postgres-url,unset=0" group:"keys" help:"the Postgres database holding the data keys; unset, the log's own. Point it elsewhere to back keys up apart, and to share them with a database an export is imported into"`
	// Retention erases messages older than it (0: keep them).
	Retention time.Duration `var:"ARQ_RETENTION" name:"retention" default:"0s" check:"min=0" group:"keys" help:"erase messages older than this (e.g. 2160h for 90 days), as an erasure on request does; 0 keeps them"`

	RedisURL string `var:"ARQ_REDIS_URL" name:"redis-url" default:"redis://127.0.0.1:6379/0" check:"redis-url" group:"server" help:"Redis, for the cache and live updates"`
	HTTPAddr string `var:"ARQ_HTTP_ADDR" name:"http-addr" default:":8080" group:"server" help:"where the HTTP API listens"`
	// Projections runs the projection engine inside `arq serve`.
	Projections bool `var:"ARQ_PROJECTIONS" name:"projections" default:"true" negatable:"" group:"server" help:"run the projections in the server; --no-projections serves the API only (run 'arq project' elsewhere)"`
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration `var:"ARQ_SHUTDOWN_TIMEOUT" name:"shutdown-timeout" default:"30s" check:"positive" group:"server" help:"how long a stopping server waits for the requests in flight"`
	// AdminKey manages API keys; empty runs the API open.
	AdminKey string `var:"ARQ_ADMIN_KEY" name:"admin-key" group:"server" help:"the admin API key, which manages further keys at /v1/admin/keys; without it the API runs open"`
	// CORSOrigins may call the API from a browser.
	CORSOrigins []string `var:"ARQ_CORS_ORIGINS" name:"cors-origins" group:"server" help:"comma-separated origins a browser may call the API from"`
	// CacheEntities reads users, sessions, messages and memories by id
	// through Redis.
	CacheEntities bool `var:"ARQ_CACHE_ENTITIES" name:"cache-entities" default:"true" negatable:"" group:"server" help:"cache reads of one user, session, message or memory by id"`
	// CacheMemoryBytes bounds the cache entries (context windows,
	// entities) each process keeps in its own memory in front of Redis;
	// 0 keeps none there.
	CacheMemoryBytes int64 `var:"ARQ_CACHE_MEMORY_BYTES" name:"cache-memory-bytes" default:"67108864" check:"min=0" group:"server" help:"about how much of the cache each process also keeps in its own memory, in front of Redis; 0 keeps nothing there"`
	// VectorCacheBytes bounds the embeddings each server keeps in memory
	// for searches and context windows with an embedding; 0 keeps none
	// (they are read from Postgres for each).
	VectorCacheBytes int64 `var:"ARQ_VECTOR_CACHE_BYTES" name:"vector-cache-bytes" default:"268435456" check:"min=0" group:"server" help:"about how many bytes of users' embeddings each server keeps in memory for vector rankings (checked against Postgres on every read); 0 reads them from Postgres each time"`
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes int64 `var:"ARQ_MAX_BODY_BYTES" name:"max-body-bytes" default:"1048576" check:"min=1024" group:"server" help:"largest request body; larger ones get 413"`
	// RateLimit limits each API key's requests a second, RateLimitBurst
	// how many come at once (0: twice the rate); RateLimitAnonymous each
	// client address's requests with a missing or wrong key, with a burst
	// of twice it. 0 sets no limit. Kept in Redis, shared by the instances.
	RateLimit          int `var:"ARQ_RATE_LIMIT" name:"rate-limit" default:"100" check:"min=0" group:"server" help:"requests a second each API key may send, counted in Redis across instances (each instance alone while Redis is down); more get 429. 0: no limit. The admin key has none"`
	RateLimitBurst     int `var:"ARQ_RATE_LIMIT_BURST" name:"rate-limit-burst" default:"0" check:"min=0" group:"server" help:"how many requests an API key may send at once, within ARQ_RATE_LIMIT over time; 0: twice ARQ_RATE_LIMIT"`
	RateLimitAnonymous int `var:"ARQ_RATE_LIMIT_ANONYMOUS" name:"rate-limit-anonymous" default:"10" check:"min=0" group:"server" help:"requests a second each client address may send with a missing or wrong key (a burst of twice it); more get 429, without a key lookup. 0: no limit"`
	// MaxContextTokens is the largest max_tokens a context read or
	// snapshot may ask for: a window's work and size grow with it.
	MaxContextTokens int `var:"ARQ_MAX_CONTEXT_TOKENS" name:"max-context-tokens" default:"128000" check:"range=${default_max_tokens}..${max_window_tokens}" group:"server" help:"the largest max_tokens a context read or snapshot may ask for; more gets 422"`
	// RequestReadTimeout bounds reading a request, headers and body
	// (http.Server's ReadTimeout); it does not bound writing the answer,
	// so event streams are not cut by it.
	RequestReadTimeout time.Duration `var:"ARQ_REQUEST_READ_TIMEOUT" name:"request-read-timeout" default:"10s" check:"positive" group:"server" help:"how long a client has to send a request, headers and body; a slower one's connection is closed"`
	// ReadYourWrites bounds how long a command waits for the query tables.
	ReadYourWrites time.Duration `var:"ARQ_READ_YOUR_WRITES_TIMEOUT" name:"read-your-writes-timeout" default:"2s" check:"positive" group:"server" help:"how long a command waits for the query tables before answering 202"`
	// MinPositionWait bounds how long a read waits for X-Arq-Min-Position.
	MinPositionWait time.Duration `var:"ARQ_MIN_POSITION_TIMEOUT" name:"min-position-timeout" default:"2s" check:"positive" group:"server" help:"how long a read with X-Arq-Min-Position waits before answering 503"`
	// TokenEncoding is the BPE encoding tokens are counted with.
	TokenEncoding string `var:"ARQ_TOKEN_ENCODING" name:"token-encoding" default:"cl100k_base" check:"oneof=cl100k_base|o200k_base" group:"server" help:"the tokenizer messages' tokens are counted with (offline)"`
	// ExpiryInterval is how often due sessions and memories are expired.
	ExpiryInterval time.Duration `var:"ARQ_EXPIRY_INTERVAL" name:"expiry-interval" default:"1s" check:"positive" group:"server" help:"how often due sessions and memories are expired"`
	// BackgroundInterval is how often the context snapshots of new
	// assistant messages are recorded and sessions checked for summaries.
	BackgroundInterval time.Duration `var:"ARQ_BACKGROUND_INTERVAL" name:"background-interval" default:"1s" check:"positive" group:"server" help:"how often context snapshots of new assistant messages are recorded and sessions checked for a summary"`

	// Summarizer is "extractive" or "chat" (SummarizerURL, SummarizerModel,
	// SummarizerAPIKey then name an OpenAI-compatible endpoint).
	Summarizer       string `var:"ARQ_SUMMARIZER" name:"summarizer" default:"extractive" check:"oneof=extractive|chat" group:"summaries" help:"extractive (offline) or chat (an OpenAI-compatible endpoint)"`
	SummarizerURL    string `var:"ARQ_SUMMARIZER_URL" name:"summarizer-url" group:"summaries" help:"for chat: the endpoint's base URL (…/v1)"`
	SummarizerModel  string `var:"ARQ_SUMMARIZER_MODEL" name:"summarizer-model" default:"gpt-4o-mini" group:"summaries" help:"for chat: the model"`
	SummarizerAPIKey string `var:"ARQ_SUMMARIZER_API_KEY" name:"summarizer-api-key" group:"summaries" help:"for chat: the endpoint's key"`
	// SummaryThreshold is how many tokens of messages outside the newest
	// SummaryRecent tokens make a session due for a summary; a summary is
	// at most SummaryMaxTokens long (extractive).
	SummaryThreshold int `var:"ARQ_SUMMARY_THRESHOLD_TOKENS" name:"summary-threshold-tokens" default:"2000" check:"min=1" group:"summaries" help:"a session is summarized when its messages outside the newest --summary-recent-tokens cost more than this"`
	SummaryRecent    int `var:"ARQ_SUMMARY_RECENT_TOKENS" name:"summary-recent-tokens" default:"2000" check:"min=1" group:"summaries" help:"the newest messages left out of a summary"`
	SummaryMaxTokens int `var:"ARQ_SUMMARY_MAX_TOKENS" name:"summary-max-tokens" default:"256" check:"min=1" group:"summaries" help:"the longest extractive summary"`

	// Extractor is "off" or "chat": with chat, memories are extracted from
	// conversations by the OpenAI-compatible endpoint ExtractorURL names
	// (see commands.ExtractionWorker), after every ExtractBatch user
	// messages of a session, or fewer once the session is ExtractIdle
	// quiet; sessions quiet for longer than ExtractLookback are left to a
	// run by hand (arq memories extract).
	Extractor       string        `var:"ARQ_EXTRACTOR" name:"extractor" default:"off" check:"oneof=off|chat" group:"extraction" help:"off, or chat: extract memories from conversations with an OpenAI-compatible endpoint"`
	ExtractorURL    string        `var:"ARQ_EXTRACTOR_URL" name:"extractor-url" group:"extraction" help:"for chat: the endpoint's base URL (…/v1)"`
	ExtractorModel  string        `var:"ARQ_EXTRACTOR_MODEL" name:"extractor-model" default:"gpt-4o-mini" group:"extraction" help:"for chat: the model (it must follow a JSON schema: structured outputs)"`
	ExtractorAPIKey string        `var:"ARQ_EXTRACTOR_API_KEY" name:"extractor-api-key" group:"extraction" help:"for chat: the endpoint's key"`
	ExtractBatch    int           `var:"ARQ_EXTRACT_BATCH" name:"extract-batch" default:"1" check:"min=1" group:"extraction" help:"how many new user messages of a session make a run (1: after each user turn)"`
	ExtractIdle     time.Duration `var:"ARQ_EXTRACT_IDLE" name:"extract-idle" default:"10m" check:"positive" group:"extraction" help:"a session quiet this long is extracted with fewer than --extract-batch new user messages"`
	ExtractLookback time.Duration `var:"ARQ_EXTRACT_LOOKBACK" name:"extract-lookback" default:"24h" check:"positive" group:"extraction" help:"the background pass looks at sessions with a user message this recent"`
	ExtractTimeout  time.Duration `var:"ARQ_EXTRACT_TIMEOUT" name:"extract-timeout" default:"60s" check:"positive" group:"extraction" help:"the longest one run waits for the endpoint; a run cut short changes nothing and is tried again"`

	// EmbeddingDim is the length every embedding must have; 0 (unset)
	// accepts any (embeddings of another length than a query's then never
	// match it).
	EmbeddingDim int `var:"ARQ_EMBEDDING_DIM" name:"embedding-dim" check:"range=1..${max_embedding_dim},unset=0" group:"embeddings" help:"the length every embedding must have; unset, any length is accepted"`
	// EmbeddingsURL names an OpenAI-compatible endpoint that fills in the
	// embeddings clients leave out; empty for none. EmbeddingsTimeout
	// bounds one request to it (a command waits for it).
	EmbeddingsURL     string        `var:"ARQ_EMBEDDINGS_URL" name:"embeddings-url" check:"http-url" group:"embeddings" help:"an OpenAI-compatible base URL (…/v1) that fills in the embeddings clients leave out"`
	EmbeddingsModel   string        `var:"ARQ_EMBEDDINGS_MODEL" name:"embeddings-model" default:"text-embedding-3-small" group:"embeddings" help:"the embedding model"`
	EmbeddingsAPIKey  string        `var:"ARQ_EMBEDDINGS_API_KEY" name:"embeddings-api-key" group:"embeddings" help:"the embeddings endpoint's key"`
	EmbeddingsTimeout time.Duration `var:"ARQ_EMBEDDINGS_TIMEOUT" name:"embeddings-timeout" default:"5s" check:"positive" group:"embeddings" help:"the longest wait for the embeddings endpoint (a command waits for it)"`
}

// DefaultConfig is the configuration of a process given no ARQ_* variable
// and no flag: the defaults in Config's tags.
func DefaultConfig() Config {
	c, err := FromEnv(func(string) string { return "" })
	if err != nil {
		// The tags are the program's own; a test parses them.
		panic("app: the defaults in Config's tags do not parse: " + err.Error())
	}
	return c
}

// FromEnv reads the ARQ_* variables getenv returns over the defaults, as
// the command line does given no flag.
func FromEnv(getenv func(string) string) (Config, error) {
	var c Config
	if err := parseSettings(&c, getenv); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks every setting by its row's check, and the rules that
// join settings. Parsing checks each value it reads; Validate is for a
// Config changed since.
func (c Config) Validate() error {
	if err := checkRows(c); err != nil {
		return err
	}
	return c.checkTogether()
}

// checkTogether checks the rules between settings, which no row can.
func (c Config) checkTogether() error {
	// The summarizer's URL is read only for chat, and checked only then.
	if c.Summarizer == "chat" {
		if u, err := url.Parse(c.SummarizerURL); c.SummarizerURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			msg := "ARQ_SUMMARIZER=chat needs ARQ_SUMMARIZER_URL (--summarizer-url), an OpenAI-compatible base URL"
			if c.SummarizerURL != "" {
				msg += fmt.Sprintf(" such as https://api.openai.com/v1, not %q", c.SummarizerURL)
			}
			return &SettingError{msg: msg}
		}
	}
	if c.Extractor == "chat" {
		if u, err := url.Parse(c.ExtractorURL); c.ExtractorURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			msg := "ARQ_EXTRACTOR=chat needs ARQ_EXTRACTOR_URL (--extractor-url), an OpenAI-compatible base URL"
			if c.ExtractorURL != "" {
				msg += fmt.Sprintf(" such as https://api.openai.com/v1, not %q", c.ExtractorURL)
			}
			return &SettingError{msg: msg}
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
