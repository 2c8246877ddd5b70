package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/migrations"
	"github.com/arq-memory/arq/vault"
)

// defaultMasterKeyFile is where the master key is kept unless
// ARQ_MASTER_KEY or ARQ_MASTER_KEY_FILE say otherwise: the user's
// configuration directory, apart from the database's files.
func defaultMasterKeyFile() string { return configFile("master.key") }

// configFile is the path of a file of arq's in the user's configuration
// directory (arq/<name>), or arq-<name> here when there is none.
func configFile(name string) string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "arq-" + name
	}
	return filepath.Join(dir, "arq", name)
}

// ErrNoMasterKey is the error of a process that must read or write
// people's data but has no master key configured.
var ErrNoMasterKey = errors.New("no master key")

// keyring reads the configured master keys. With make, a missing key file
// is made with a new key (serve and migrate on a new machine), and the
// log says so.
func keyring(cfg Config, make bool, log *slog.Logger) (vault.Keyring, error) {
	var previous []vault.Master
	for _, p := range cfg.PreviousMasterKeys {
		m, err := vault.ParseMaster(p)
		if err != nil {
			return vault.Keyring{}, &SettingError{msg: "ARQ_PREVIOUS_MASTER_KEYS: " + err.Error()}
		}
		previous = append(previous, m)
	}
	if cfg.MasterKey != "" {
		m, err := vault.ParseMaster(cfg.MasterKey)
		if err != nil {
			return vault.Keyring{}, &SettingError{msg: "ARQ_MASTER_KEY: " + err.Error()}
		}
		return vault.NewKeyring(m, previous...), nil
	}
	raw, err := os.ReadFile(cfg.MasterKeyFile)
	if errors.Is(err, fs.ErrNotExist) && make {
		raw, err = makeKeyFile(cfg.MasterKeyFile)
		if err == nil {
			log.Warn("made a new master key; keep it, and copies of it, apart from the database: without it, no one can read people's data in the log",
				"file", cfg.MasterKeyFile)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return vault.Keyring{}, fmt.Errorf("%w: set ARQ_MASTER_KEY, or ARQ_MASTER_KEY_FILE to the key's file (%s does not exist; arq serve makes it)", ErrNoMasterKey, cfg.MasterKeyFile)
	}
	if err != nil {
		return vault.Keyring{}, fmt.Errorf("master key: %w", err)
	}
	m, err := vault.ParseMaster(string(raw))
	if err != nil {
		return vault.Keyring{}, &SettingError{msg: fmt.Sprintf("ARQ_MASTER_KEY_FILE %s: %v", cfg.MasterKeyFile, err)}
	}
	return vault.NewKeyring(m, previous...), nil
}

// makeKeyFile writes a new master key to path, readable by its owner
// alone, unless another process made it first: then that one is read.
func makeKeyFile(path string) ([]byte, error) {
	raw, _, err := makeSecretFile(path, vault.NewMasterKey()+"\n")
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return raw, nil
}

// makeSecretFile writes secret to a new file at path, readable by its
// owner alone, making its directory; a file another process made first
// is read instead, and made is false.
func makeSecretFile(path, secret string) (raw []byte, made bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		raw, err := os.ReadFile(path)
		return raw, false, err
	}
	if err != nil {
		return nil, false, err
	}
	_, err = f.WriteString(secret)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, false, err
	}
	return []byte(secret), true, nil
}

// openVault opens the key store (the log's database unless
// ARQ_KEYSTORE_URL names another) with the configured master keys.
func (a *App) openVault(ctx context.Context, logPool *pgxpool.Pool) error {
	keys, err := keyring(a.cfg, a.opt.MakeMasterKey, a.log)
	if err != nil {
		return err
	}
	pool, inLog := logPool, a.cfg.KeystoreURL == ""
	if !inLog {
		kcfg, err := pgxpool.ParseConfig(a.cfg.KeystoreURL)
		if err != nil {
			return fmt.Errorf("key store url: %w", err)
		}
		migrations.AsServer(kcfg.ConnConfig)
		if pool, err = pgxpool.NewWithConfig(ctx, kcfg); err != nil {
			return fmt.Errorf("key store: %w", err)
		}
		a.keyPool = pool
	}
	a.vault = vault.New(pool, keys, inLog)
	if err := a.vault.Check(ctx); err != nil {
		return err
	}
	return nil
}
