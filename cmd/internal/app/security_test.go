package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestSecurityValidate: inconsistent security settings are refused with an
// error that names the settings; consistent ones pass.
func TestSecurityValidate(t *testing.T) {
	base := func(f func(*Options)) Options {
		o := Defaults()
		o.Brokers = "b:9092"
		f(&o)
		return o
	}
	for _, tc := range []struct {
		name string
		o    Options
		want []string // all in the error; none: valid
	}{
		{"default plaintext", base(func(o *Options) {}), nil},
		{"scram over tls", base(func(o *Options) {
			o.SecurityProtocol, o.SASLMechanism, o.SASLUsername, o.SASLPassword = "sasl_ssl", "scram-sha-512", "u", "p"
		}), nil},
		{"mtls", base(func(o *Options) {
			o.SecurityProtocol, o.TLSCertFile, o.TLSKeyFile, o.TLSCAFile = "SSL", "c", "k", "ca"
		}), nil},
		{"scram over plaintext", base(func(o *Options) {
			o.SecurityProtocol, o.SASLMechanism, o.SASLUsername, o.SASLPasswordFile = "SASL_PLAINTEXT", "SCRAM-SHA-256", "u", "f"
		}), nil},
		{"unknown protocol", base(func(o *Options) { o.SecurityProtocol = "TLS" }), []string{"security_protocol", "SASL_SSL"}},
		{"mechanism with plaintext", base(func(o *Options) { o.SASLMechanism = "PLAIN" }), []string{"sasl_mechanism set but security_protocol is PLAINTEXT"}},
		{"password with SSL", base(func(o *Options) { o.SecurityProtocol, o.SASLPassword = "SSL", "p" }), []string{"sasl_password set but security_protocol is SSL"}},
		{"no mechanism", base(func(o *Options) { o.SecurityProtocol, o.SASLUsername, o.SASLPassword = "SASL_SSL", "u", "p" }), []string{"needs sasl_mechanism"}},
		{"bad mechanism", base(func(o *Options) {
			o.SecurityProtocol, o.SASLMechanism, o.SASLUsername, o.SASLPassword = "SASL_SSL", "GSSAPI", "u", "p"
		}), []string{`sasl_mechanism "GSSAPI"`}},
		{"no user, no password", base(func(o *Options) { o.SecurityProtocol, o.SASLMechanism = "SASL_SSL", "PLAIN" }), []string{"needs sasl_username", "needs sasl_password or sasl_password_file"}},
		{"two passwords", base(func(o *Options) {
			o.SecurityProtocol, o.SASLMechanism, o.SASLUsername, o.SASLPassword, o.SASLPasswordFile = "SASL_SSL", "PLAIN", "u", "p", "f"
		}), []string{"only one of sasl_password and sasl_password_file"}},
		{"PLAIN in clear", base(func(o *Options) {
			o.SecurityProtocol, o.SASLMechanism, o.SASLUsername, o.SASLPassword = "SASL_PLAINTEXT", "PLAIN", "u", "p"
		}), []string{"PLAIN with security_protocol SASL_PLAINTEXT"}},
		{"tls file with plaintext", base(func(o *Options) { o.TLSCAFile = "ca" }), []string{"tls_ca_file set but security_protocol is PLAINTEXT"}},
		{"cert without key", base(func(o *Options) { o.SecurityProtocol, o.TLSCertFile = "SSL", "c" }), []string{"tls_cert_file and tls_key_file go together"}},
		{"key without cert", base(func(o *Options) { o.SecurityProtocol, o.TLSKeyFile = "SSL", "k" }), []string{"tls_cert_file and tls_key_file go together"}},
		{"skip verify and CA", base(func(o *Options) { o.SecurityProtocol, o.TLSCAFile, o.TLSInsecureSkipVerify = "SSL", "ca", true }), []string{"tls_insecure_skip_verify"}},
	} {
		err := tc.o.Validate()
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: unexpected error: %v", tc.name, err)
		case tc.want != nil && err == nil:
			t.Errorf("%s: no error, want %q", tc.name, tc.want)
		case err != nil:
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: error %q does not contain %q", tc.name, err, w)
				}
			}
		}
	}
}

// TestSecuritySources: the security keys come from the config file, the
// environment and flags like every other option (flag > env > file), and
// the password can be given by file or by INVROUTE_SASL_PASSWORD.
func TestSecuritySources(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "invroute.json")
	if err := os.WriteFile(cfg, []byte(`{"brokers":"k:9093","security_protocol":"SASL_SSL","sasl_mechanism":"PLAIN",
		"sasl_username":"file-user","sasl_password_file":"/run/secrets/kafka","tls_ca_file":"/file/ca.pem","tls_server_name":"kafka.file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("INVROUTE_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("INVROUTE_SASL_USERNAME", "env-user")
	t.Setenv("INVROUTE_TLS_CA_FILE", "/env/ca.pem")
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	load := Flags(fs)
	if err := fs.Parse([]string{"-config", cfg, "-tls-ca-file", "/flag/ca.pem"}); err != nil {
		t.Fatal(err)
	}
	o, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if o.SecurityProtocol != "SASL_SSL" || o.SASLMechanism != "SCRAM-SHA-512" || o.SASLUsername != "env-user" ||
		o.SASLPasswordFile != "/run/secrets/kafka" || o.TLSCAFile != "/flag/ca.pem" || o.TLSServerName != "kafka.file" {
		t.Errorf("options: %+v", o)
	}

	// the password itself from the environment, the file or a flag
	for _, tc := range []struct {
		args []string
		env  string
		file string
	}{
		{env: "from-env"},
		{file: `{"brokers":"k","security_protocol":"SASL_SSL","sasl_mechanism":"PLAIN","sasl_username":"u","sasl_password":"from-file"}`},
		{args: []string{"-sasl-password", "from-flag"}, env: "from-env"},
	} {
		args := []string{"-brokers", "k", "-security-protocol", "SASL_SSL", "-sasl-mechanism", "PLAIN", "-sasl-username", "u"}
		want := "from-env"
		if tc.file != "" {
			f := filepath.Join(dir, "pw.json")
			if err := os.WriteFile(f, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			args, want = []string{"-config", f}, "from-file"
		}
		if tc.args != nil {
			want = "from-flag"
		}
		os.Unsetenv("INVROUTE_SASL_PASSWORD")
		if tc.env != "" {
			t.Setenv("INVROUTE_SASL_PASSWORD", tc.env)
		}
		for _, k := range []string{"INVROUTE_SASL_MECHANISM", "INVROUTE_SASL_USERNAME", "INVROUTE_TLS_CA_FILE"} {
			os.Unsetenv(k)
		}
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		load := Flags(fs)
		if err := fs.Parse(append(args, tc.args...)); err != nil {
			t.Fatal(err)
		}
		o, err := load()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if o.SASLPassword.reveal() != want {
			t.Errorf("%v env %q: password %q, want %q", tc.args, tc.env, o.SASLPassword.reveal(), want)
		}
	}
}

// TestSecurityFiles: SecurityOpts reads the files and its errors name the
// file and the setting, never the contents.
func TestSecurityFiles(t *testing.T) {
	dir := t.TempDir()
	const secret = "pw-not-for-logs-9f2c"
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pki := newTestPKI(t, dir, "client")
	pwFile := write("password", secret+"\r\n")
	secretFile := write("not-a-cert", secret)
	emptyFile := write("empty", "\n")
	ok := Defaults()
	ok.Brokers, ok.SecurityProtocol, ok.SASLMechanism, ok.SASLUsername, ok.SASLPasswordFile = "b", "SASL_SSL", "SCRAM-SHA-512", "u", pwFile
	ok.TLSCAFile, ok.TLSCertFile, ok.TLSKeyFile = pki.ca, pki.cert("client"), pki.key("client")
	opts, err := ok.SecurityOpts()
	if err != nil || len(opts) != 2 {
		t.Fatalf("SecurityOpts = %d opts, %v; want TLS and SASL", len(opts), err)
	}
	if m, err := ok.saslMechanism(); err != nil || m.Name() != "SCRAM-SHA-512" {
		t.Fatalf("mechanism %v, %v", m, err)
	}
	plainText := Defaults()
	if opts, err := plainText.SecurityOpts(); err != nil || len(opts) != 0 {
		t.Fatalf("PLAINTEXT: %d opts, %v; want none", len(opts), err)
	}
	for _, tc := range []struct {
		name string
		f    func(*Options)
		want string
	}{
		{"missing CA", func(o *Options) { o.TLSCAFile = filepath.Join(dir, "nope.pem") }, "tls_ca_file: open " + filepath.Join(dir, "nope.pem")},
		{"CA without PEM", func(o *Options) { o.TLSCAFile = secretFile }, "tls_ca_file " + secretFile + ": no PEM certificate"},
		{"key of another cert", func(o *Options) { o.TLSKeyFile = pki.key("rogue") }, "private key does not match"},
		{"key not PEM", func(o *Options) { o.TLSKeyFile = secretFile }, "tls_key_file " + secretFile},
		{"empty password file", func(o *Options) { o.SASLPasswordFile = emptyFile }, "sasl_password_file " + emptyFile + " is empty"},
		{"missing password file", func(o *Options) { o.SASLPasswordFile = filepath.Join(dir, "nope") }, "sasl_password_file: open"},
	} {
		o := ok
		tc.f(&o)
		_, err := o.SecurityOpts()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the file's contents: %v", tc.name, err)
		}
	}
}

// TestSecurityRedaction: the password never shows when the options are
// printed, logged, marshalled or rejected.
func TestSecurityRedaction(t *testing.T) {
	const secret = "hunter2-do-not-print"
	o := Defaults()
	o.Brokers, o.SecurityProtocol, o.SASLMechanism, o.SASLUsername, o.SASLPassword = "b", "SASL_SSL", "PLAIN", "u", secret
	var out bytes.Buffer
	fmt.Fprintf(&out, "%v\n%+v\n%#v\n%s\n%q\n%x\n%v\n", o, o, o, o.SASLPassword, o.SASLPassword, o.SASLPassword, &o)
	js, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(js)
	slog.New(slog.NewTextHandler(&out, nil)).Info("config", "options", o, "password", o.SASLPassword)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("config", "options", o, "password", o.SASLPassword)
	bad := o
	bad.SecurityProtocol = "PLAINTEXT" // rejected: the error names the setting, not its value
	if err := bad.Validate(); err == nil {
		t.Fatal("a password with PLAINTEXT was accepted")
	} else {
		out.WriteString(err.Error())
	}
	if strings.Contains(out.String(), secret) {
		t.Fatalf("the password shows in:\n%s", out.String())
	}
	if !strings.Contains(out.String(), redacted) || !strings.Contains(out.String(), `"sasl_password":"[redacted]"`) {
		t.Fatalf("no redaction marker in:\n%s", out.String())
	}
	// the redacted value is not lost: it is what the mechanism uses
	if o.SASLPassword.reveal() != secret || fmt.Sprint(Secret("")) != "" {
		t.Fatal("Secret lost its value")
	}
}

// TestSecurityACLDocs: docs/security.md lists exactly the ACLs that
// RequiredACLs derives from the topologies (and that TestSecurity grants).
func TestSecurityACLDocs(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	table := ACLTable(RequiredACLs(Defaults()))
	if !strings.Contains(string(doc), table) {
		t.Fatalf("docs/security.md does not contain the ACL table of RequiredACLs(Defaults()):\n%s", table)
	}
}

// TestSecurity runs against one broker of its own, started by
// deploy/kafka/kafka.sh with KAFKA_SECURITY=sasl_ssl and the authorizer:
// the right credentials work (SCRAM-SHA-512 and PLAIN over TLS, mutual
// TLS); plaintext, wrong passwords, wrong mechanisms, unknown CAs and
// missing or untrusted client certificates are refused with clear errors;
// the engine runs as a user with exactly the ACLs of docs/security.md and
// fails clearly without one of them; no password reaches a log or an
// error.
func TestSecurity(t *testing.T) {
	b := startSecureBroker(t)
	secrets := []string{b.passwords["admin"], b.passwords["app"]}

	t.Run("SCRAM-SHA-512", func(t *testing.T) {
		o := b.scram(t, "admin")
		roundTrip(t, o, "sec-scram")
		o.TopicPrefix = "scram."
		if _, err := CreateTopics(context.Background(), o); err != nil {
			t.Fatalf("invroute topics create with SCRAM-SHA-512: %v", err)
		}
	})
	t.Run("PLAIN", func(t *testing.T) {
		roundTrip(t, b.plain("admin"), "sec-plain") // (topics create: SCRAM above, mTLS below)
	})
	t.Run("mTLS", func(t *testing.T) { roundTrip(t, b.mtls("admin"), "sec-mtls") })

	t.Run("Refused", func(t *testing.T) {
		wrong := "wrong-" + randomPassword(t)
		for _, tc := range []struct {
			name string
			o    Options
			want []string
		}{
			{"plaintext to SASL_SSL", func() Options { o := Defaults(); o.Brokers = b.sasl; return o }(),
				[]string{"answered with TLS", "set security_protocol to SSL or SASL_SSL"}},
			{"SCRAM wrong password", func() Options {
				o := b.scram(t, "admin")
				o.SASLPasswordFile, o.SASLPassword = "", Secret(wrong)
				return o
			}(), []string{"SASL_AUTHENTICATION_FAILED", "Kafka refused the SASL login", `user "admin"`, "SCRAM-SHA-512"}},
			{"PLAIN wrong password", func() Options { o := b.plain("admin"); o.SASLPassword = Secret(wrong); return o }(),
				[]string{"SASL_AUTHENTICATION_FAILED", "Kafka refused the SASL login", "sasl_mechanism PLAIN"}},
			{"SCRAM unknown user", func() Options {
				o := b.plain("admin")
				o.SASLMechanism, o.SASLUsername = "SCRAM-SHA-512", "nobody"
				return o
			}(),
				[]string{"SASL_AUTHENTICATION_FAILED", `user "nobody"`}},
			{"mechanism not enabled", func() Options { o := b.plain("admin"); o.SASLMechanism = "SCRAM-SHA-256"; return o }(),
				[]string{"UNSUPPORTED_SASL_MECHANISM", "does not enable sasl_mechanism SCRAM-SHA-256"}},
			{"TLS without SASL to SASL_SSL", func() Options { o := b.mtls("admin"); o.Brokers = b.sasl; return o }(),
				[]string{"closed the connection", "security_protocol must match"}},
			{"CA unknown", func() Options { o := b.plain("admin"); o.TLSCAFile = ""; return o }(),
				[]string{"certificate", "set tls_ca_file"}},
			{"mTLS without client certificate", func() Options { o := b.mtls("admin"); o.TLSCertFile, o.TLSKeyFile = "", ""; return o }(),
				[]string{"refused the TLS handshake", "set tls_cert_file and tls_key_file"}},
			{"mTLS untrusted client certificate", func() Options {
				o := b.mtls("admin")
				o.TLSCertFile, o.TLSKeyFile = b.pki.cert("rogue"), b.pki.key("rogue")
				return o
			}(), []string{"refused the TLS handshake"}},
		} {
			o := tc.o
			o.TopicPrefix = "refused."
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			t0 := time.Now()
			_, err := CreateTopics(ctx, o)
			cancel()
			if err == nil {
				t.Errorf("%s: accepted", tc.name)
				continue
			}
			t.Logf("%s (%v): %v", tc.name, time.Since(t0).Round(time.Millisecond), err)
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: no answer within 60s: %v", tc.name, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: error does not say %q: %v", tc.name, w, err)
				}
			}
			for _, s := range append(secrets, wrong) {
				if strings.Contains(err.Error(), s) {
					t.Errorf("%s: the error shows a password: %v", tc.name, err)
				}
			}
		}
	})

	t.Run("MinimalACLs", func(t *testing.T) { testMinimalACLs(t, b, secrets) })
}

// securedClient is a client with o's security options or fails the test.
func securedClient(t *testing.T, o Options, more ...kgo.Opt) *kgo.Client {
	t.Helper()
	sec, err := o.SecurityOpts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(SplitBrokers(o.Brokers)...)}, sec...), more...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// roundTrip creates topic, produces a record and consumes it with o's
// security options.
func roundTrip(t *testing.T, o Options, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := securedClient(t, o)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("create %s: %v", topic, err)
	}
	want := fmt.Sprintf("hello over %s %s", o.protocol(), o.mechanism())
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(want)}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cons := securedClient(t, o, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume: nothing within 60s")
		}
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("consume: %v", errs[0].Err)
		}
		for _, r := range fs.Records() {
			if string(r.Value) == want {
				return
			}
		}
	}
}

// grant creates acls for principal as admin.
func grant(t *testing.T, adm *kadm.Client, principal string, acls []ACL, del bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range acls {
		bld := kadm.NewACLs().Allow(principal).AllowHosts("*")
		switch a.Resource {
		case "TOPIC":
			bld.Topics(a.Name)
		case "GROUP":
			bld.Groups(a.Name)
		case "TRANSACTIONAL_ID":
			bld.TransactionalIDs(a.Name)
		default:
			t.Fatalf("resource %s", a.Resource)
		}
		pattern := kadm.ACLPatternLiteral
		if a.Pattern == "PREFIXED" {
			pattern = kadm.ACLPatternPrefixed
		}
		var ops []kadm.ACLOperation
		for _, op := range a.Operations {
			switch op {
			case "READ":
				ops = append(ops, kadm.OpRead)
			case "WRITE":
				ops = append(ops, kadm.OpWrite)
			case "DESCRIBE_CONFIGS":
				ops = append(ops, kadm.OpDescribeConfigs)
			default:
				t.Fatalf("operation %s", op)
			}
		}
		bld.ResourcePatternType(pattern).Operations(ops...)
		if del {
			res, err := adm.DeleteACLs(ctx, bld)
			if err == nil {
				for _, r := range res {
					if err = r.Err; err == nil && len(r.Deleted) == 0 {
						err = fmt.Errorf("nothing deleted")
					}
				}
			}
			if err != nil {
				t.Fatalf("deleting ACL %+v: %v", a, err)
			}
			continue
		}
		res, err := adm.CreateACLs(ctx, bld)
		if err == nil {
			for _, r := range res {
				if r.Err != nil {
					err = fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
				}
			}
		}
		if err != nil {
			t.Fatalf("creating ACL %+v: %v", a, err)
		}
	}
}

// testMinimalACLs: an admin (mutual TLS, super user) creates the topics with
// `invroute topics create` and grants User:app exactly RequiredACLs; the
// engine (inventory and router) then runs as app with SCRAM-SHA-512:
// stock movements become ATS and an order is routed, with no authorization
// error on the way and no password in the debug logs of slog and franz-go.
// Without the ACL of routing-decisions the engine stops with a clear error.
func testMinimalACLs(t *testing.T, b *secureBroker, secrets []string) {
	const prefix = "acl."
	configure := func(o *Options) {
		o.TopicPrefix = prefix
		o.Group = prefix + "inventory"
		o.InstanceID = "i1"
		o.StateDir = t.TempDir()
		o.Partitions = 2
		o.Replication = 1
		o.CommitInterval = 50 * time.Millisecond
		o.LogLevel = "debug"
	}
	admin := b.mtls("admin")
	configure(&admin)
	if _, err := CreateTopics(context.Background(), admin); err != nil {
		t.Fatalf("invroute topics create as admin over mutual TLS: %v", err)
	}
	adminCl := securedClient(t, admin, kgo.ProducerLinger(time.Millisecond))
	adm := kadm.NewClient(adminCl)
	app := b.scram(t, "app")
	configure(&app)
	acls := RequiredACLs(app)
	grant(t, adm, "User:app", acls, false)
	t.Logf("granted User:app %d ACLs", len(acls))

	// ACLs reach the authorizer through the metadata log: wait until app
	// sees every topic.
	appAdm := kadm.NewClient(securedClient(t, app))
	var names []string
	for _, a := range acls {
		if a.Resource == "TOPIC" {
			names = append(names, a.Name)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		td, err := appAdm.ListTopics(context.Background(), names...)
		if err == nil && td.Error() == nil && len(td) == len(names) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("app cannot describe its topics 20s after the grant: %v / %v", err, td.Error())
		}
		time.Sleep(100 * time.Millisecond)
	}

	var logs testkit.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	kgoDebug := kgo.WithLogger(kgo.BasicLogger(&logs, kgo.LogLevelDebug, nil))
	eng, err := NewEngine(app, log, nil, kgoDebug)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("engine as app with the minimal ACLs: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("engine did not stop within 60s")
		}
	}
	defer stop()

	stock := testkit.Stock{"SEC-SKU": {"W-PAR": 5, "W-BER": 3}}
	seedNetwork(t, adminCl, eng, prefix, stock) // movements -> inventory -> ats -> router's table
	testkit.Produce(t, adminCl, testkit.RandomOrders(t, rand.New(rand.NewPCG(1, 2)), prefix, []string{"sec-o1"}, []string{"SEC-SKU"})...)

	var decision *schemas.RoutingDecision
	var ats int
	rd := securedClient(t, admin, kgo.ConsumeTopics(prefix+"routing-decisions", prefix+"ats"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	pctx, pcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer pcancel()
	for decision == nil || ats == 0 {
		fs := rd.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatalf("after 90s: decision %v, %d ats records", decision, ats)
		}
		for _, r := range fs.Records() {
			switch r.Topic {
			case prefix + "ats":
				var u schemas.AtsUpdate
				if err := schemas.AtsUpdates.Decode(r.Value, &u); err != nil {
					t.Fatal(err)
				}
				if u.SKU == "SEC-SKU" {
					ats++
				}
			default:
				var d schemas.RoutingDecision
				if err := schemas.RoutingDecisions.Decode(r.Value, &d); err != nil {
					t.Fatal(err)
				}
				decision = &d
			}
		}
	}
	if decision.OrderID != "sec-o1" || decision.Status != schemas.DecisionRouted {
		t.Errorf("decision %+v, want sec-o1 ROUTED", decision)
	}
	stop()

	all := logs.String()
	for _, want := range []string{"beginning sasl authentication", "engine starting"} {
		if !strings.Contains(all, want) {
			t.Errorf("the captured debug logs lack %q: the capture does not work", want)
		}
	}
	if strings.Contains(all, "AUTHORIZATION_FAILED") {
		i := strings.Index(all, "AUTHORIZATION_FAILED")
		t.Errorf("an operation was denied with the minimal ACLs: ...%s...", all[max(0, i-300):min(len(all), i+200)])
	}
	for _, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("a password shows in the logs")
		}
	}
	t.Logf("engine ran as User:app: %d ats records for SEC-SKU, decision %s; %d bytes of debug logs without a password",
		ats, decision.Status, len(all))

	// Without one of them: the router cannot write (or even see)
	// routing-decisions.
	var missing []ACL
	for _, a := range acls {
		if a.Resource == "TOPIC" && a.Name == prefix+"routing-decisions" {
			missing = append(missing, a)
		}
	}
	grant(t, adm, "User:app", missing, true)
	for deadline := time.Now().Add(20 * time.Second); ; {
		td, _ := appAdm.ListTopics(context.Background(), prefix+"routing-decisions")
		if td.Error() != nil || len(td) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("app still sees routing-decisions 20s after the ACL was deleted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	app.StateDir = t.TempDir()
	eng, err = NewEngine(app, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer rcancel()
	err = eng.Run(rctx)
	if err == nil || rctx.Err() != nil {
		t.Fatalf("engine without the ACL of routing-decisions: %v (context: %v), want an authorization error", err, rctx.Err())
	}
	t.Logf("without the routing-decisions ACL: %v", err)
	for _, w := range []string{"TOPIC_AUTHORIZATION_FAILED", "may not see the topics " + prefix + "routing-decisions:", "an ACL is missing", `user "app"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the error does not say %q: %v", w, err)
		}
	}
}

// TestRequiredACLsDashboard: with http_addr and the dashboard, the list
// adds READ on the topics the dashboard tails (found by review: the
// "exactly the following" list left the dashboard unauthorised); without
// either, it does not.
func TestRequiredACLsDashboard(t *testing.T) {
	ops := func(o Options) map[string]string {
		m := map[string]string{}
		for _, a := range RequiredACLs(o) {
			if a.Resource == "TOPIC" {
				m[a.Name] = strings.Join(a.Operations, ",")
			}
		}
		return m
	}
	on := Defaults()
	on.HTTPAddr = ":8080"
	off := on
	off.Dashboard = false
	for name, want := range map[string]string{"ats": "READ,WRITE", "routing-decisions": "READ,WRITE", "fulfillment-requests": "READ,WRITE", "dead-letter": "READ,WRITE,DESCRIBE_CONFIGS"} {
		if got := ops(on)[name]; got != want {
			t.Errorf("dashboard on: %s %s, want %s", name, got, want)
		}
	}
	for _, o := range []Options{Defaults(), off} {
		if got := ops(o)["routing-decisions"]; got != "WRITE" {
			t.Errorf("http_addr %q dashboard %v: routing-decisions %s, want WRITE", o.HTTPAddr, o.Dashboard, got)
		}
	}
}
