// Package config reads the daemons' YAML configuration files with viper, decodes
// them into plain structs, applies environment overrides and collects every problem
// — unknown keys, wrong types, broken rules — into one error that names the file,
// the key, the value and the rule, so an operator sees all mistakes at once.
//
// A daemon describes its configuration as a struct whose fields carry `key:"name"`
// tags (nested structs become nested sections; an untagged embedded struct is merged
// into its parent). Defaults are the values the struct holds before Decode. Keys are
// matched exactly: viper folds case, so `topiC:` would pass as topic; the file's raw
// YAML is read too, and a key spelt otherwise than its tag is reported as unknown
// (section names a daemon looks up itself, such as kmonitor's clusters, and the
// keys of free-form maps keep any case). A typical load is:
//
//	f, err := config.Open(path, "KPROXY")
//	if err != nil { return err }
//	cfg := Defaults()
//	f.Decode("", &cfg)
//	cfg.check(f)        // f.Problem(key, value, rule) for every broken rule
//	return f.Err()
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// File is one configuration file opened for decoding. It is not safe for concurrent
// use; a daemon decodes its file once at start-up.
type File struct {
	path      string
	name      string
	envPrefix string
	v         *viper.Viper
	known     map[string]bool // every key a Decode call looked at
	exact     map[string]bool // keys named by a struct tag: spelt exactly, in lower case
	open      []string        // sections whose sub-keys are free-form (e.g. header maps)
	raw       [][]string      // every key path of the file as written (mappings only)
	problems  []problem
}

type problem struct {
	key string
	msg string
}

// Open reads the YAML file at path. envPrefix (e.g. "KPROXY") enables environment
// overrides: KPROXY_PORT for port, KPROXY_KAFKA_TLS_ENABLED for kafka.tls.enabled.
// A missing or unparsable file is returned as an error at once; everything else is
// collected and returned by Err.
func Open(path, envPrefix string) (*File, error) {
	if path == "" {
		return nil, errors.New("no configuration file given (use -f FILE or --config FILE)")
	}
	v := viper.New()
	v.SetConfigFile(path)
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("read configuration %s: %w", path, err)
	}
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	if envPrefix != "" {
		v.SetEnvPrefix(envPrefix)
	}
	return &File{
		path:      path,
		name:      filepath.Base(path),
		envPrefix: envPrefix,
		v:         v,
		known:     map[string]bool{},
		exact:     map[string]bool{},
		raw:       rawKeys(path),
	}, nil
}

// rawKeys returns the key paths of the YAML file at path as written, through
// nested mappings (not into lists): viper folds keys to lower case, so this is
// the only place their spelling survives. An unreadable file gives none (viper
// has read it already, so that does not happen).
func rawKeys(path string) [][]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	var out [][]string
	var walk func(prefix []string, n *yaml.Node, depth int)
	walk = func(prefix []string, n *yaml.Node, depth int) {
		if n.Kind != yaml.MappingNode || depth > 32 {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Value == "<<" {
				continue
			}
			p := append(append([]string(nil), prefix...), k.Value)
			out = append(out, p)
			walk(p, n.Content[i+1], depth+1)
		}
	}
	walk(nil, doc.Content[0], 0)
	return out
}

// Path returns the file's path as given to Open.
func (f *File) Path() string { return f.path }

// Name returns the file's base name, the prefix of every problem message.
func (f *File) Name() string { return f.name }

// IsSet reports whether key is present in the file or set through the environment.
func (f *File) IsSet(key string) bool {
	f.bindEnv(key)
	return f.v.IsSet(key)
}

// Problem records a broken rule: "FILE: KEY: VALUE RULE", for example
// `kproxy.yaml: port: 70000 is not in 1..65535`. Strings are quoted.
func (f *File) Problem(key string, value any, rule string) {
	f.problems = append(f.problems, problem{key: key, msg: fmt.Sprintf("%s: %s: %s %s", f.name, key, formatValue(value), rule)})
}

// Problemf records a problem that is not about one value, still naming the key.
func (f *File) Problemf(key, format string, args ...any) {
	f.problems = append(f.problems, problem{key: key, msg: fmt.Sprintf("%s: %s: %s", f.name, key, fmt.Sprintf(format, args...))})
}

// Sections returns the top-level keys of the file, for configurations whose sections
// are named by the operator (kmonitor's clusters).
func (f *File) Sections() []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range f.v.AllKeys() {
		top, _, _ := strings.Cut(k, ".")
		if !seen[top] {
			seen[top] = true
			out = append(out, top)
		}
	}
	sort.Strings(out)
	return out
}

// Err returns nil when the file had no problem, otherwise one error joining every
// problem — unknown keys included — sorted by key so the report is stable.
func (f *File) Err() error {
	probs := append([]problem(nil), f.problems...)
	for _, k := range f.v.AllKeys() {
		if !f.isKnown(k) {
			probs = append(probs, problem{key: k, msg: fmt.Sprintf("%s: %s: unknown key (misspelt, or not valid here)", f.name, k)})
		}
	}
	probs = append(probs, f.miscased()...)
	if f.envPrefix != "" {
		probs = append(probs, f.unknownEnv()...)
	}
	if len(probs) == 0 {
		return nil
	}
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].key < probs[j].key })
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = errors.New(p.msg)
	}
	return errors.Join(errs...)
}

// miscased reports keys written in another case than their struct tag (`topiC:`
// for topic): viper would take them as the key, the original daemons did not.
// Keys of free-form sections (header maps) and section names a daemon looks up
// itself (kmonitor's clusters, Decode's section argument) may be written in any
// case. One problem per miscased key, not one per key below it.
func (f *File) miscased() []problem {
	var out []problem
	reported := map[string]bool{}
	for _, path := range f.raw {
		lower := ""
		for i, c := range path {
			lower = join(lower, strings.ToLower(c))
			if !f.exact[lower] || c == strings.ToLower(c) {
				continue
			}
			written := strings.Join(path[:i+1], ".")
			if !reported[written] {
				reported[written] = true
				out = append(out, problem{key: lower, msg: fmt.Sprintf("%s: %s: unknown key (keys are written in lower case: %s)", f.name, written, lower)})
			}
			break
		}
	}
	return out
}

func (f *File) isKnown(key string) bool {
	if f.known[key] {
		return true
	}
	for _, o := range f.open {
		if strings.HasPrefix(key, o+".") {
			return true
		}
	}
	return false
}

// unknownEnv reports PREFIX_* variables that match no decoded key, so a typo in an
// override is not silently ignored either.
func (f *File) unknownEnv() []problem {
	envKeys := map[string]bool{}
	for k := range f.known {
		envKeys[f.envName(k)] = true
	}
	var out []problem
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, f.envPrefix+"_") || envKeys[name] {
			continue
		}
		out = append(out, problem{key: "~env " + name, msg: fmt.Sprintf("environment: %s: unknown override (no such key in %s)", name, f.name)})
	}
	return out
}

func (f *File) envName(key string) string {
	return f.envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func (f *File) bindEnv(key string) {
	if f.envPrefix != "" {
		_ = f.v.BindEnv(key, f.envName(key))
	}
}

// Decode fills dst, a pointer to a struct with `key` tags, from the section named
// section ("" for the whole file). Fields whose key is absent keep their value, so
// defaults are whatever dst held before. Type errors are recorded as problems.
// Keys named by tags must be written exactly (tags are lower case); section,
// often a name the operator chose, is matched in any case.
func (f *File) Decode(section string, dst any) {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("config: Decode needs a pointer to a struct, got %T", dst))
	}
	if section != "" {
		f.known[section] = true
	}
	f.decodeStruct(section, rv.Elem())
}

func join(section, key string) string {
	if section == "" {
		return key
	}
	return section + "." + key
}

func (f *File) decodeStruct(section string, sv reflect.Value) {
	st := sv.Type()
	for i := 0; i < st.NumField(); i++ {
		sf := st.Field(i)
		if !sf.IsExported() && !sf.Anonymous {
			continue
		}
		tag, hasTag := sf.Tag.Lookup("key")
		if tag == "-" {
			continue
		}
		fv := sv.Field(i)
		if !hasTag {
			if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
				f.decodeStruct(section, fv)
			}
			continue
		}
		key := join(section, tag)
		f.known[key] = true
		f.exact[key] = true
		if fv.Kind() == reflect.Struct {
			f.decodeStruct(key, fv)
			continue
		}
		if fv.Kind() == reflect.Map || (fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Map) {
			f.open = append(f.open, key)
		}
		f.bindEnv(key)
		if !f.v.IsSet(key) {
			continue
		}
		raw := f.v.Get(key)
		if err := assign(fv, raw); err != nil {
			f.Problem(key, raw, err.Error())
		}
	}
}

// assign converts a YAML/env value to the field's type.
func assign(fv reflect.Value, raw any) error {
	if fv.Type() == durationType {
		s, ok := raw.(string)
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if !ok || err != nil || d < 0 {
			return errors.New("is not a duration such as 500ms, 30s or 2m")
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		switch r := raw.(type) {
		case string:
			fv.SetString(r)
		case int, int64, float64, bool:
			fv.SetString(fmt.Sprint(r))
		default:
			return errors.New("is not a string")
		}
	case reflect.Bool:
		switch r := raw.(type) {
		case bool:
			fv.SetBool(r)
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(r))
			if err != nil {
				return errors.New("is not true or false")
			}
			fv.SetBool(b)
		default:
			return errors.New("is not true or false")
		}
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := toInt(raw)
		if err != nil {
			return err
		}
		if fv.OverflowInt(n) {
			return errors.New("is out of range")
		}
		fv.SetInt(n)
	case reflect.Float64:
		switch r := raw.(type) {
		case float64:
			fv.SetFloat(r)
		case int:
			fv.SetFloat(float64(r))
		case string:
			x, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
			if err != nil {
				return errors.New("is not a number")
			}
			fv.SetFloat(x)
		default:
			return errors.New("is not a number")
		}
	case reflect.Slice:
		return assignSlice(fv, raw)
	case reflect.Map:
		m, ok := toStringMap(raw)
		if !ok {
			return errors.New("is not a map")
		}
		out := reflect.MakeMapWithSize(fv.Type(), len(m))
		for k, v := range m {
			ev := reflect.New(fv.Type().Elem()).Elem()
			if err := assign(ev, v); err != nil {
				return fmt.Errorf("has entry %q that %w", k, err)
			}
			out.SetMapIndex(reflect.ValueOf(k), ev)
		}
		fv.Set(out)
	default:
		return fmt.Errorf("cannot be decoded into %s", fv.Type())
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func toInt(raw any) (int64, error) {
	switch r := raw.(type) {
	case int:
		return int64(r), nil
	case int64:
		return r, nil
	case uint64:
		if r > 1<<63-1 {
			return 0, errors.New("is out of range")
		}
		return int64(r), nil
	case float64:
		if r != float64(int64(r)) {
			return 0, errors.New("is not a whole number")
		}
		return int64(r), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(r), 10, 64)
		if err != nil {
			return 0, errors.New("is not a whole number")
		}
		return n, nil
	}
	return 0, errors.New("is not a whole number")
}

func assignSlice(fv reflect.Value, raw any) error {
	var items []any
	switch r := raw.(type) {
	case []any:
		items = r
	case []string:
		for _, s := range r {
			items = append(items, s)
		}
	case string:
		// Environment overrides give lists as "a,b,c".
		for _, s := range strings.Split(r, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
	case nil:
	default:
		return errors.New("is not a list")
	}
	out := reflect.MakeSlice(fv.Type(), len(items), len(items))
	for i, it := range items {
		if err := assign(out.Index(i), it); err != nil {
			return fmt.Errorf("has item %d that %w", i+1, err)
		}
	}
	fv.Set(out)
	return nil
}

func toStringMap(raw any) (map[string]any, bool) {
	switch r := raw.(type) {
	case map[string]any:
		return r, true
	case map[any]any:
		m := make(map[string]any, len(r))
		for k, v := range r {
			m[fmt.Sprint(k)] = v
		}
		return m, true
	}
	return nil, false
}

func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []any, []string:
		return fmt.Sprintf("%v", x)
	case nil:
		return "(empty)"
	}
	return fmt.Sprint(v)
}

// Keys lists every key a struct decodes, nested ones joined with dots, in field
// order; documentation tests use it to prove an example file shows every key.
func Keys(dst any) []string {
	var out []string
	var walk func(section string, t reflect.Type)
	walk = func(section string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			tag, ok := sf.Tag.Lookup("key")
			switch {
			case (!sf.IsExported() && !sf.Anonymous) || tag == "-":
			case !ok && sf.Anonymous && sf.Type.Kind() == reflect.Struct:
				walk(section, sf.Type)
			case !ok:
			case sf.Type.Kind() == reflect.Struct:
				walk(join(section, tag), sf.Type)
			default:
				out = append(out, join(section, tag))
			}
		}
	}
	walk("", reflect.TypeOf(dst))
	return out
}

// Unset returns the keys of dst (as Keys lists them, under section) that the file
// at path does not set. Tests use it to keep the commented example files complete.
func Unset(path, section string, dst any) ([]string, error) {
	v := viper.New()
	v.SetConfigFile(path)
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("read configuration %s: %w", path, err)
	}
	var out []string
	for _, k := range Keys(dst) {
		if k = join(section, k); !v.IsSet(k) {
			out = append(out, k)
		}
	}
	return out, nil
}
