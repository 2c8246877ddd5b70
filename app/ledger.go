package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/arq-memory/arq/ledger"
)

// defaultLogKeyFile is where the log's signing key is kept unless
// ARQ_LOG_SIGNING_KEY or ARQ_LOG_SIGNING_KEY_FILE say otherwise: beside
// the master key, apart from the database.
func defaultLogKeyFile() string { return configFile("log-signing.key") }

// LogSigningKey reads the configured signing key of the log's
// checkpoints (ARQ_LOG_SIGNING_KEY, else its file): "" when none is.
func LogSigningKey(cfg Config) (string, error) {
	return logSigningKey(cfg, false, nil)
}

// logSigningKey reads the configured signing key of the log's
// checkpoints: "" when none is configured and make is false. With make, a
// missing key file is made with a new key, and log says so and names its
// verifier key.
func logSigningKey(cfg Config, make bool, log *slog.Logger) (string, error) {
	if cfg.LogSigningKey != "" {
		return cfg.LogSigningKey, nil
	}
	raw, err := os.ReadFile(cfg.LogSigningKeyFile)
	if errors.Is(err, fs.ErrNotExist) && make {
		var vkey string
		raw, vkey, err = MakeLogKeyFile(cfg.LogSigningKeyFile, "")
		if err == nil {
			log.Warn("made a new signing key for the log's checkpoints; keep it apart from the database, and give its verifier key to whoever checks the log",
				"file", cfg.LogSigningKeyFile, "verifier_key", vkey)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("log signing key: %w", err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// MakeLogKeyFile writes a new signing key named name ("": arq-<host name>) to
// path, readable by its owner alone, and returns it and its verifier key;
// a file another process made first is read instead (vkey "").
func MakeLogKeyFile(path, name string) (skey []byte, vkey string, err error) {
	if name == "" {
		host, _ := os.Hostname()
		name = keyName(host)
	}
	s, v, err := ledger.NewSigningKey(name)
	if err != nil {
		return nil, "", err
	}
	raw, made, err := makeSecretFile(path, s+"\n")
	if err != nil {
		return nil, "", fmt.Errorf("log signing key: %w", err)
	}
	if !made {
		v = ""
	}
	return raw, v, nil
}

// keyName is a note key name made of a host name: "arq-" and the host
// name's letters, digits, dots and dashes.
func keyName(host string) string {
	b := []byte("arq")
	if host != "" {
		b = append(b, '-')
	}
	for _, r := range []byte(host) {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			b = append(b, r)
		}
	}
	return string(b)
}

// openSigner readies the signer of the log's checkpoints, when a signing
// key is configured (or made).
func (a *App) openSigner(ctx context.Context) error {
	skey, err := logSigningKey(a.cfg, a.opt.MakeMasterKey, a.log)
	if err != nil {
		return err
	}
	if skey == "" {
		a.log.Warn("no signing key for the log's checkpoints: its Merkle tree is built, but no checkpoint is signed (set ARQ_LOG_SIGNING_KEY or ARQ_LOG_SIGNING_KEY_FILE)")
		return nil
	}
	if a.signer, err = ledger.Signer(skey); err != nil {
		return &SettingError{msg: "ARQ_LOG_SIGNING_KEY: " + err.Error()}
	}
	if a.origin, err = ledger.Origin(ctx, a.pool); err != nil {
		return err
	}
	return nil
}

// keepLedger builds the log's tree and signs its checkpoints until ctx
// ends.
func (a *App) keepLedger(ctx context.Context) {
	a.tree.Keep(ctx, a.notifier, ledger.Keeping{Signer: a.signer, Origin: a.origin, Every: a.cfg.LogCheckpointEvery, Dir: a.cfg.LogCheckpointDir})
}

// Tree is the log's Merkle tree (nil before a part that builds or reads
// it is opened).
func (a *App) Tree() *ledger.Tree { return a.tree }
