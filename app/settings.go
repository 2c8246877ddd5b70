package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/vault"
)

// The rows of Config are read by kong: a field's tags name its flag
// (name), default, help and group as kong knows them, plus two of arq's
// own, var (the ARQ_* variable) and check (a rule below). kong's own env
// tag is not used because it reads the process's environment, and a test
// hands the command line its own.

// SettingError is a setting's value refused by its check, named by where
// it came from: its ARQ_* variable or its flag.
type SettingError struct{ msg string }

func (e *SettingError) Error() string { return e.msg }

// SettingOptions are the kong options a grammar that holds a Config (with
// `embed:""`) needs: the ARQ_* variables, read through getenv under the
// flags; the settings' checks; the variable in each flag's help; the help
// groups.
func SettingOptions(getenv func(string) string) []kong.Option {
	vars := settingVars()
	return []kong.Option{
		vars,
		kong.Resolvers(variables(getenv)),
		kong.PostBuild(func(k *kong.Kong) error {
			m := settingMapper{vars: vars}
			return kong.Visit(k.Model, func(n kong.Visitable, next kong.Next) error {
				if f, ok := n.(*kong.Flag); ok && f.Tag.Get("var") != "" {
					f.Mapper = m
				}
				return next(nil)
			})
		}),
		kong.ValueFormatter(helpWithVariable),
		kong.ExplicitGroups([]kong.Group{
			{Key: "db", Title: "Settings: database and logs"},
			{Key: "server", Title: "Settings: server (serve, project)"},
			{Key: "summaries", Title: "Settings: summaries (serve)"},
			{Key: "extraction", Title: "Settings: extraction (serve, memories extract)"},
			{Key: "embeddings", Title: "Settings: embeddings (serve, embeddings backfill)"},
			{Key: "keys", Title: "Settings: keys and erasure"},
		}),
	}
}

// SettingProblem is the SettingError within err, if any; else err.
func SettingProblem(err error) error {
	var se *SettingError
	if errors.As(err, &se) {
		return se
	}
	return err
}

// settingVars are the values Config's tags interpolate.
func settingVars() kong.Vars {
	return kong.Vars{
		"append_batches":       strconv.Itoa(eventstore.DefaultGroupCommit),
		"max_embedding_dim":    strconv.Itoa(domain.MaxEmbeddingDim),
		"default_max_tokens":   strconv.Itoa(domain.DefaultMaxTokens),
		"max_window_tokens":    strconv.Itoa(domain.MaxWindowTokens),
		"master_key_file":      defaultMasterKeyFile(),
		"log_signing_key_file": defaultLogKeyFile(),
	}
}

// parseSettings fills c from its defaults and the variables getenv
// returns, as a command line with no flag does.
func parseSettings(c *Config, getenv func(string) string) error {
	k, err := kong.New(c, append(SettingOptions(getenv), kong.Name("arq"), kong.NoDefaultHelp())...)
	if err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	if _, err := k.Parse(nil); err != nil {
		return SettingProblem(err)
	}
	return c.checkTogether()
}

// fromVariable is a value read from an ARQ_* variable, as the resolver
// hands it to the mapper, so that a refusal names the variable.
type fromVariable struct{ name, value string }

// variables resolves each setting that no flag set from its variable; an
// empty variable is unset.
func variables(getenv func(string) string) kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, f *kong.Flag) (any, error) {
		name := f.Tag.Get("var")
		if name == "" {
			return nil, nil
		}
		if v := getenv(name); v != "" {
			return fromVariable{name: name, value: v}, nil
		}
		return nil, nil
	})
}

// helpWithVariable adds a setting's variable to its help (kong shows
// the default).
func helpWithVariable(v *kong.Value) string {
	name := v.Tag.Get("var")
	if name == "" {
		return kong.DefaultHelpValueFormatter(v)
	}
	return fmt.Sprintf("%s ($%s)", v.Help, name)
}

// settingMapper reads a setting's value, from a flag, its variable or its
// default, and checks it.
type settingMapper struct{ vars kong.Vars }

func (m settingMapper) Decode(ctx *kong.DecodeContext, target reflect.Value) error {
	label, raw := "--"+ctx.Value.Name, "true" // a bool flag given alone
	if target.Kind() != reflect.Bool || ctx.Scan.Peek().Type == kong.FlagValueToken {
		tok, err := ctx.Scan.PopValue("value")
		if err != nil {
			return err
		}
		switch v := tok.Value.(type) {
		case fromVariable:
			label, raw = v.name, v.value
		case string:
			raw = v
		default: // a negated bool flag
			raw = fmt.Sprint(v)
		}
	}
	r, err := ruleOf(ctx.Value.Tag.Get("check"), m.vars)
	if err != nil {
		return err
	}
	v, err := parseValue(target.Type(), raw)
	if err != nil || !r.accepts(v, true) {
		return &SettingError{msg: fmt.Sprintf("%s=%q: want %s", label, shown(r, raw), r.want(target.Type()))}
	}
	target.Set(v)
	return nil
}

// checkRows checks each of c's settings by its row's check.
func checkRows(c Config) error {
	vars := settingVars()
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name := f.Tag.Get("var")
		if name == "" {
			continue
		}
		r, err := ruleOf(interpolate(f.Tag.Get("check"), vars), vars)
		if err != nil {
			return err
		}
		if !r.accepts(v.Field(i), false) {
			return &SettingError{msg: fmt.Sprintf("%s=%q: want %s", name, shown(r, format(v.Field(i))), r.want(f.Type))}
		}
	}
	return nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	levelType    = reflect.TypeFor[slog.Level]()
)

// parseValue reads raw as a value of type t.
func parseValue(t reflect.Type, raw string) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	switch {
	case t == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return v, err
		}
		v.SetInt(int64(d))
	case t == levelType:
		var l slog.Level
		if err := l.UnmarshalText([]byte(raw)); err != nil {
			return v, err
		}
		v.SetInt(int64(l))
	case t.Kind() == reflect.String:
		v.SetString(raw)
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return v, err
		}
		v.SetBool(b)
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, t.Bits())
		if err != nil {
			return v, err
		}
		v.SetInt(n)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		v.Set(reflect.ValueOf(SplitList(raw)))
	default:
		return v, fmt.Errorf("a setting of type %s", t)
	}
	return v, nil
}

// format writes a setting's value as its variable would hold it.
func format(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case slog.Level:
		return strings.ToLower(x.String())
	case []string:
		return strings.Join(x, ",")
	default:
		return fmt.Sprint(x)
	}
}

// rule is the check of one setting, as its check tag writes it: min=N,
// range=A..B, positive, oneof=a|b, postgres-url, redis-url or http-url;
// ",unset=0" lets the zero value stand for "none" as a default, though
// not when given.
type rule struct {
	kind     string
	min, max int64
	oneOf    []string
	unset    bool
}

func ruleOf(tag string, vars kong.Vars) (rule, error) {
	var r rule
	tag, unset := strings.CutSuffix(interpolate(tag, vars), ",unset=0")
	r.unset = unset
	kind, arg, _ := strings.Cut(tag, "=")
	r.kind = kind
	var err error
	switch kind {
	case "", "positive", "postgres-url", "redis-url", "http-url", "master-key", "master-keys":
	case "min":
		r.min, err = strconv.ParseInt(arg, 10, 64)
	case "range":
		lo, hi, _ := strings.Cut(arg, "..")
		if r.min, err = strconv.ParseInt(lo, 10, 64); err == nil {
			r.max, err = strconv.ParseInt(hi, 10, 64)
		}
	case "oneof":
		r.oneOf = strings.Split(arg, "|")
	default:
		err = errors.New("unknown check")
	}
	if err != nil {
		return r, fmt.Errorf("check %q: %w", tag, err)
	}
	return r, nil
}

func interpolate(s string, vars kong.Vars) string {
	for k, v := range vars {
		s = strings.ReplaceAll(s, "${"+k+"}", v)
	}
	return s
}

// accepts tells whether v passes the rule; given is whether a flag or a
// variable set it (rather than a default).
func (r rule) accepts(v reflect.Value, given bool) bool {
	if r.unset && !given && v.IsZero() {
		return true
	}
	switch r.kind {
	case "min":
		return v.Int() >= r.min
	case "range":
		return v.Int() >= r.min && v.Int() <= r.max
	case "positive":
		return v.Int() > 0
	case "oneof":
		for _, o := range r.oneOf {
			if format(v) == o {
				return true
			}
		}
		return false
	case "postgres-url":
		u, err := url.Parse(v.String())
		return err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") && strings.Trim(u.Path, "/") != ""
	case "redis-url":
		u, err := url.Parse(v.String())
		return err == nil && (u.Scheme == "redis" || u.Scheme == "rediss")
	case "http-url":
		if v.String() == "" {
			return true // none
		}
		u, err := url.Parse(v.String())
		return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
	case "master-key":
		_, err := vault.ParseMaster(v.String())
		return v.String() == "" || err == nil
	case "master-keys":
		for i := range v.Len() {
			if _, err := vault.ParseMaster(v.Index(i).String()); err != nil {
				return false
			}
		}
		return true
	}
	return true
}

// shown is how a wrong value is quoted back: a key's not at all, since
// a key that is wrong may still be someone's.
func shown(r rule, value string) string {
	if strings.HasPrefix(r.kind, "master-key") {
		return "(hidden)"
	}
	return value
}

// want says what the rule accepts, for a value of type t.
func (r rule) want(t reflect.Type) string {
	switch r.kind {
	case "min":
		return fmt.Sprintf("a whole number of at least %d", r.min)
	case "range":
		return fmt.Sprintf("a whole number from %d to %d", r.min, r.max)
	case "positive":
		return "a positive duration such as 2s"
	case "oneof":
		if len(r.oneOf) < 2 {
			return strings.Join(r.oneOf, "")
		}
		return strings.Join(r.oneOf[:len(r.oneOf)-1], ", ") + " or " + r.oneOf[len(r.oneOf)-1]
	case "postgres-url":
		return "postgres://user@host:port/database"
	case "redis-url":
		return "redis://host:port/db"
	case "http-url":
		return "an OpenAI-compatible base URL such as https://api.openai.com/v1"
	case "master-key", "master-keys":
		return "base64 of 32 bytes, as 'arq keys new' prints"
	}
	switch {
	case t == durationType:
		return "a duration such as 2s"
	case t == levelType:
		return "debug, info, warn or error"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return "a whole number"
	}
	return "a value"
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
