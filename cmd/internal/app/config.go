package app

// Configuration keys: one table, derived from the fields of Options, gives
// every key its YAML name, its environment variable, its flag, its default
// and its help. The file, the environment and the flags are all parsed by
// the same function per key, so a value means the same wherever it is set.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix is the prefix of every configuration environment variable.
const EnvPrefix = "INVROUTE_"

// Key is one configuration key.
type Key struct {
	Name    string // YAML key
	Doc     string
	Default string // how the default is shown
	field   int
	kind    string // string, secret, int, int64, bool, float, duration
}

// Env is the key's environment variable.
func (k Key) Env() string { return EnvPrefix + strings.ToUpper(k.Name) }

// Flag is the key's flag name (without dashes in front).
func (k Key) Flag() string { return strings.ReplaceAll(k.Name, "_", "-") }

var durationType = reflect.TypeFor[time.Duration]()
var secretType = reflect.TypeFor[Secret]()

// Keys returns every configuration key, in the order of Options.
func Keys() []Key {
	t := reflect.TypeFor[Options]()
	def := reflect.ValueOf(Defaults())
	var keys []Key
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("yaml")
		if name == "" || name == "-" {
			continue
		}
		k := Key{Name: name, Doc: f.Tag.Get("doc"), field: i}
		switch {
		case f.Type == durationType:
			k.kind = "duration"
		case f.Type == secretType:
			k.kind = "secret"
		default:
			switch f.Type.Kind() {
			case reflect.String:
				k.kind = "string"
			case reflect.Int:
				k.kind = "int"
			case reflect.Int64:
				k.kind = "int64"
			case reflect.Bool:
				k.kind = "bool"
			case reflect.Float64:
				k.kind = "float"
			default:
				panic("app: option " + f.Name + " has a type the configuration cannot parse")
			}
		}
		k.Default = f.Tag.Get("default")
		if k.Default == "" {
			k.Default = formatValue(def.Field(i))
		}
		keys = append(keys, k)
	}
	return keys
}

// formatValue shows a value as it would be written in the file.
func formatValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return formatDuration(time.Duration(v.Int()))
	case v.Type() == secretType:
		return Secret(v.String()).String()
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}

// formatDuration is time.Duration.String without trailing zero units
// (24h, not 24h0m0s).
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// set parses s into the key's field of o.
func (k Key) set(o *Options, s string) error {
	f := reflect.ValueOf(o).Elem().Field(k.field)
	switch k.kind {
	case "string", "secret":
		f.SetString(s)
	case "int", "int64":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || (k.kind == "int" && int64(int(n)) != n) {
			return fmt.Errorf("%q is not an integer", s)
		}
		f.SetInt(n)
	case "bool":
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		f.SetBool(b)
	case "float":
		x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		f.SetFloat(x)
	case "duration":
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a duration (write it with a unit: 100ms, 10s, 24h)", s)
		}
		f.SetInt(int64(d))
	}
	return nil
}

func keyByName() map[string]Key {
	m := map[string]Key{}
	for _, k := range Keys() {
		m[k.Name] = k
	}
	return m
}

// ParseFile reads a YAML (or JSON, which is YAML) config file into o, on
// top of what o holds. Unknown keys, duplicate keys and values that do not
// parse are errors naming the key and its line; all of them are reported.
func ParseFile(path string, o *Options) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	err = ParseYAML(b, o)
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, fmt.Errorf("%s: %w", path, e))
		}
		return errors.Join(errs...)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ParseYAML is ParseFile on the file's contents.
func ParseYAML(b []byte, o *Options) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file: every default
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: the file must be a mapping of keys to values", root.Line)
	}
	keys := keyByName()
	seen := map[string]int{}
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		kn, vn := root.Content[i], root.Content[i+1]
		name := kn.Value
		k, ok := keys[name]
		if !ok {
			errs = append(errs, fmt.Errorf("line %d: unknown key %q%s", kn.Line, name, suggest(name)))
			continue
		}
		if prev, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("line %d: key %s is set twice (first on line %d)", kn.Line, name, prev))
			continue
		}
		seen[name] = kn.Line
		s, err := scalar(k, vn)
		if err == nil {
			err = k.set(o, s)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s: %v", vn.Line, name, err))
		}
	}
	return errors.Join(errs...)
}

// scalar is the text of a value node; a list is accepted for the
// comma-separated keys.
func scalar(k Key, n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			if k.kind == "string" || k.kind == "secret" {
				return "", nil
			}
			return "", errors.New("no value")
		}
		return n.Value, nil
	case yaml.SequenceNode:
		if k.Name != "brokers" && k.Name != "schema_ids" {
			break
		}
		var parts []string
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return "", errors.New("expected a list of strings")
			}
			parts = append(parts, c.Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("expected a single value, not a %s", nodeKind(n))
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}

// suggest names a key close to an unknown one (a dash instead of an
// underscore, another case).
func suggest(name string) string {
	norm := strings.ToLower(strings.ReplaceAll(name, "-", "_"))
	if _, ok := keyByName()[norm]; ok && norm != name {
		return fmt.Sprintf(" (did you mean %s?)", norm)
	}
	return ""
}

// fromEnv applies every INVROUTE_<KEY> variable that is set, then
// KAFKA_BROKERS if brokers is still empty.
func fromEnv(o *Options) error {
	var errs []error
	for _, k := range Keys() {
		if v, ok := os.LookupEnv(k.Env()); ok {
			if err := k.set(o, v); err != nil {
				errs = append(errs, fmt.Errorf("%s (key %s): %v", k.Env(), k.Name, err))
			}
		}
	}
	if v, ok := os.LookupEnv("KAFKA_BROKERS"); ok && o.Brokers == "" {
		o.Brokers = v
	}
	return errors.Join(errs...)
}

// flagValue is a key's flag: it checks the value when the flag is parsed
// and keeps the text, applied after the file and the environment.
type flagValue struct {
	k   Key
	def string
	raw *string
}

func (f *flagValue) String() string {
	if f == nil || f.raw == nil {
		return ""
	}
	return f.def
}

func (f *flagValue) Set(s string) error {
	var scratch Options
	if err := f.k.set(&scratch, s); err != nil {
		return err
	}
	*f.raw = s
	return nil
}

func (f *flagValue) IsBoolFlag() bool { return f.k.kind == "bool" }

// FlagError is a command line fs.Parse refused. The flag package has
// printed the problem and the command's flags already; the command exits
// 2, as for any usage error, without printing it again.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }

// Unwrap makes it a usage error (flag.ErrHelp).
func (e *FlagError) Unwrap() []error { return []error{e.Err, flag.ErrHelp} }

// ParseFlags is fs.Parse(args) with its errors told apart: nil, flag.ErrHelp
// itself when -h or --help asked for the flags (printed: the command exits
// 0), or a *FlagError.
//
// The flag package prints a refused flag's problem and then the usage, over
// a hundred lines for run's: the problem is printed here with a flag of a
// close name, if there is one, and a pointer to -h instead.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
		return err
	}
	hint := ""
	if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
		if near := nearestFlag(fs, name); near != "" {
			hint = "did you mean --" + near + "? "
		}
	}
	fmt.Fprintf(fs.Output(), "%s(invroute %s -h lists the flags)\n", hint, fs.Name())
	return &FlagError{Err: err}
}

// nearestFlag is the flag of fs whose name is closest to name (at most two
// edits away, or a prefix of at least three letters), or "".
func nearestFlag(fs *flag.FlagSet, name string) string {
	name = strings.TrimPrefix(name, "-")
	best, bestD := "", 3
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(name, f.Name)
		if len(name) >= 3 && strings.HasPrefix(f.Name, name) {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// NoArgs fails when fs parsed arguments it took for no flag. The flag
// package stops at the first such argument and leaves every flag after it
// unparsed: "--router false --instance-id x" sets router=true (a bool flag
// takes --router=false) and ignores the instance id.
func NoArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: flags after it were not read (a bool flag takes --flag=false): %w", fs.Arg(0), flag.ErrHelp)
	}
	return nil
}

// Flags registers -config and one flag per key on fs and returns a function
// that finishes loading: defaults, then the config file, then the
// environment, then the flags that were set; then Validate.
func Flags(fs *flag.FlagSet) func() (Options, error) {
	var cfgFile string
	fs.StringVar(&cfgFile, "config", "", "YAML config file (JSON works too); keys as in the README, env "+EnvPrefix+"CONFIG")
	raws := map[string]*string{}
	keys := Keys()
	for _, k := range keys {
		raw := new(string)
		raws[k.Flag()] = raw
		fs.Var(&flagValue{k: k, def: k.Default, raw: raw}, k.Flag(), fmt.Sprintf("%s (env %s)", k.Doc, k.Env()))
	}
	return func() (Options, error) {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if cfgFile == "" {
			cfgFile = os.Getenv(EnvPrefix + "CONFIG")
		}
		o, err := load(cfgFile, func(o *Options) error {
			var errs []error
			for _, k := range keys {
				if set[k.Flag()] {
					if err := k.set(o, *raws[k.Flag()]); err != nil {
						errs = append(errs, fmt.Errorf("-%s: %v", k.Flag(), err))
					}
				}
			}
			return errors.Join(errs...)
		})
		// every problem at once, as config check reports them: those of
		// loading and those of the values loaded
		return o, errors.Join(err, o.Validate())
	}
}

// load builds the options from the defaults, the file (if any), the
// environment and flags, collecting every error.
func load(file string, flags func(*Options) error) (Options, error) {
	o := Defaults()
	var errs []error
	if file != "" {
		errs = append(errs, ParseFile(file, &o))
	}
	errs = append(errs, fromEnv(&o))
	if flags != nil {
		errs = append(errs, flags(&o))
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = o.MetricsAddr
	}
	return o, errors.Join(errs...)
}

// Check loads file as `invroute run --config file` would (with the
// environment) and returns every problem, or nil.
func Check(file string) (Options, error) {
	o, err := load(file, nil)
	return o, errors.Join(err, o.Validate())
}

// WriteDefaults writes a YAML config file of every key with its default
// value and its documentation.
func WriteDefaults(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# invroute configuration: every key with its default value.\n")
	b.WriteString("# Each key can also be set by environment variable (INVROUTE_<KEY>) or flag (--key-name);\n")
	b.WriteString("# a flag beats the environment, which beats this file.\n")
	def := reflect.ValueOf(Defaults())
	for _, k := range Keys() {
		fmt.Fprintf(&b, "\n# %s\n", k.Doc)
		if d := k.Default; d != formatValue(def.Field(k.field)) {
			fmt.Fprintf(&b, "# default: %s\n", d)
		}
		v := formatValue(def.Field(k.field))
		if k.kind == "secret" {
			v = ""
		}
		fmt.Fprintf(&b, "%s: %s\n", k.Name, yamlScalar(k, v))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteEffective writes o as a YAML config file, one key a line; a secret
// that is set shows as [redacted].
func WriteEffective(w io.Writer, o Options) error {
	var b strings.Builder
	b.WriteString("# invroute: the effective configuration (defaults, file, environment, flags)\n")
	o.RouterGroup = o.RouterGroupName() // derived from group when unset: the one in use
	v := reflect.ValueOf(o)
	for _, k := range Keys() {
		fmt.Fprintf(&b, "%s: %s\n", k.Name, yamlScalar(k, formatValue(v.Field(k.field))))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func yamlScalar(k Key, v string) string {
	if k.kind == "string" || k.kind == "secret" {
		return strconv.Quote(v)
	}
	return v
}

// MarkdownTable is the README's table of every key.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| key | environment | flag | default | meaning |\n|---|---|---|---|---|\n")
	for _, k := range Keys() {
		d := "`" + k.Default + "`"
		switch {
		case k.Default == "":
			d = `""`
		case strings.ContainsAny(k.Default, " ()"):
			d = k.Default
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | `--%s` | %s | %s |\n", k.Name, k.Env(), k.Flag(), d, strings.ReplaceAll(k.Doc, "|", "\\|"))
	}
	return b.String()
}
