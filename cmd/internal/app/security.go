package app

// Security: how invroute authenticates to Kafka and encrypts the
// connection (docs/security.md). Every Kafka client `invroute run` and
// `invroute topics create` build gets the options of SecurityOpts.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/invroute/invroute/processors/catalog"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/processors/screen"
	"github.com/invroute/invroute/topology"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Security protocols (Kafka's security.protocol names).
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

// SASL mechanisms.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// Secret is a configuration value that is never shown: every fmt verb,
// slog, JSON and flag defaults print "[redacted]" (or nothing when empty).
type Secret string

const redacted = "[redacted]"

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// Format redacts under every verb (%v, %+v, %#v, %s, %q, %x, ...).
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// LogValue redacts in slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON redacts in JSON (a printed configuration); decoding a config
// file still reads the value.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Set implements flag.Value.
func (s *Secret) Set(v string) error {
	*s = Secret(v)
	return nil
}

// reveal is the value itself, for the SASL mechanism only.
func (s Secret) reveal() string { return string(s) }

// protocol is the upper-cased security_protocol, PLAINTEXT when unset.
func (o *Options) protocol() string {
	p := strings.ToUpper(strings.TrimSpace(o.SecurityProtocol))
	if p == "" {
		return ProtocolPlaintext
	}
	return p
}

func (o *Options) mechanism() string { return strings.ToUpper(strings.TrimSpace(o.SASLMechanism)) }

func (o *Options) usesTLS() bool {
	p := o.protocol()
	return p == ProtocolSSL || p == ProtocolSASLSSL
}

func (o *Options) usesSASL() bool {
	p := o.protocol()
	return p == ProtocolSASLPlaintext || p == ProtocolSASLSSL
}

// validateSecurity reports every inconsistent security setting; it does not
// read the files (SecurityOpts does).
func (o *Options) validateSecurity() []error {
	var errs []error
	p := o.protocol()
	switch p {
	case ProtocolPlaintext, ProtocolSSL, ProtocolSASLPlaintext, ProtocolSASLSSL:
	default:
		return []error{fmt.Errorf("security_protocol %q: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", o.SecurityProtocol)}
	}
	m := o.mechanism()
	if o.usesSASL() {
		switch m {
		case MechanismPlain, MechanismScramSHA256, MechanismScramSHA512:
		case "":
			errs = append(errs, fmt.Errorf("security_protocol %s needs sasl_mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", p))
		default:
			errs = append(errs, fmt.Errorf("sasl_mechanism %q: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", o.SASLMechanism))
		}
		if m == MechanismPlain && p == ProtocolSASLPlaintext {
			errs = append(errs, errors.New("sasl_mechanism PLAIN with security_protocol SASL_PLAINTEXT would send the password in clear: use SASL_SSL"))
		}
		if o.SASLUsername == "" {
			errs = append(errs, fmt.Errorf("security_protocol %s needs sasl_username", p))
		}
		switch {
		case o.SASLPassword == "" && o.SASLPasswordFile == "":
			errs = append(errs, fmt.Errorf("security_protocol %s needs sasl_password or sasl_password_file", p))
		case o.SASLPassword != "" && o.SASLPasswordFile != "":
			errs = append(errs, errors.New("set only one of sasl_password and sasl_password_file"))
		}
	} else {
		var set []string
		for _, f := range []struct {
			name string
			on   bool
		}{
			{"sasl_mechanism", o.SASLMechanism != ""},
			{"sasl_username", o.SASLUsername != ""},
			{"sasl_password", o.SASLPassword != ""},
			{"sasl_password_file", o.SASLPasswordFile != ""},
		} {
			if f.on {
				set = append(set, f.name)
			}
		}
		if len(set) > 0 {
			errs = append(errs, fmt.Errorf("%s set but security_protocol is %s: use SASL_SSL (or SASL_PLAINTEXT)", strings.Join(set, ", "), p))
		}
	}
	if !o.usesTLS() {
		var set []string
		for _, f := range []struct {
			name string
			on   bool
		}{
			{"tls_ca_file", o.TLSCAFile != ""},
			{"tls_cert_file", o.TLSCertFile != ""},
			{"tls_key_file", o.TLSKeyFile != ""},
			{"tls_server_name", o.TLSServerName != ""},
			{"tls_insecure_skip_verify", o.TLSInsecureSkipVerify},
		} {
			if f.on {
				set = append(set, f.name)
			}
		}
		if len(set) > 0 {
			errs = append(errs, fmt.Errorf("%s set but security_protocol is %s: use SSL or SASL_SSL", strings.Join(set, ", "), p))
		}
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls_cert_file and tls_key_file go together (mutual TLS): set both or neither"))
	}
	if o.TLSInsecureSkipVerify && o.TLSCAFile != "" {
		errs = append(errs, errors.New("tls_insecure_skip_verify ignores tls_ca_file: set only one"))
	}
	return errs
}

// SecurityOpts returns the Kafka client options of o's security settings: a
// TLS dialer and a SASL mechanism, or none for PLAINTEXT. It reads the
// files the options name; its errors name files and settings, never their
// contents.
func (o *Options) SecurityOpts() ([]kgo.Opt, error) {
	if errs := o.validateSecurity(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var opts []kgo.Opt
	if o.usesTLS() {
		tc, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if o.usesSASL() {
		m, err := o.saslMechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (o *Options) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.TLSServerName,         // empty: the broker's host (franz-go)
		InsecureSkipVerify: o.TLSInsecureSkipVerify, //nolint:gosec // opt-in, documented as discouraged
	}
	if o.TLSCAFile != "" {
		b, err := os.ReadFile(o.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls_ca_file %s: no PEM certificate in it", o.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if o.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls_cert_file %s / tls_key_file %s: %w", o.TLSCertFile, o.TLSKeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (o *Options) saslMechanism() (sasl.Mechanism, error) {
	pass := o.SASLPassword.reveal()
	if o.SASLPasswordFile != "" {
		b, err := os.ReadFile(o.SASLPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("sasl_password_file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
		if pass == "" {
			return nil, fmt.Errorf("sasl_password_file %s is empty", o.SASLPasswordFile)
		}
	}
	user := o.SASLUsername
	switch o.mechanism() {
	case MechanismPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case MechanismScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	default:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
}

// explainKafkaError puts in front of a Kafka client error what it most
// likely means for the security settings, naming the settings to check.
// It keeps the original error (errors.Is/As still work); neither adds a
// secret.
//
// On a topic authorization error it asks Kafka, topic by topic, which of
// o's topics the principal may not see (Kafka's answer to a batch does not
// say), with the client options extra.
func (o *Options) explainKafkaError(err error, extra ...kgo.Opt) error {
	if err == nil {
		return nil
	}
	var (
		hint     string
		certErr  *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
	)
	who := "security_protocol " + o.protocol()
	if o.usesSASL() {
		who = fmt.Sprintf("user %q, sasl_mechanism %s over %s", o.SASLUsername, o.mechanism(), o.protocol())
	}
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		hint = fmt.Sprintf("Kafka refused the SASL login (%s): wrong sasl_username or password, or the user has no %s credential", who, o.mechanism())
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		hint = fmt.Sprintf("the broker's listener does not enable sasl_mechanism %s (%s): use one it enables (its sasl.enabled.mechanisms)", o.mechanism(), who)
	case errors.Is(err, kerr.IllegalSaslState):
		hint = fmt.Sprintf("the broker did not expect a SASL exchange (%s): is the listener SASL? check security_protocol", who)
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.GroupAuthorizationFailed),
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
		hint = fmt.Sprintf("Kafka denied an operation to %s: an ACL is missing (docs/security.md lists the ACLs invroute needs)", who)
		if errors.Is(err, kerr.TopicAuthorizationFailed) {
			if denied := o.deniedTopics(extra); len(denied) > 0 {
				hint += fmt.Sprintf("; it may not see the topics %s", strings.Join(denied, ", "))
			}
		}
	case errors.As(err, &certErr), errors.As(err, &unknown), errors.As(err, &hostErr):
		hint = "the broker's TLS certificate could not be verified: set tls_ca_file to the CA that signed it (and tls_server_name if the broker's address is not in the certificate)"
	case !o.usesTLS() && strings.Contains(err.Error(), "tls endpoint"): // franz-go's guess from a TLS alert record
		hint = fmt.Sprintf("the broker answered with TLS but invroute spoke plaintext (%s): set security_protocol to SSL or SASL_SSL (and tls_ca_file)", who)
	case errors.As(err, &recErr):
		hint = fmt.Sprintf("the broker did not answer with TLS (%s): its listener is not TLS; use PLAINTEXT or SASL_PLAINTEXT, or the broker's TLS port", who)
	case errors.As(err, &alertErr) || strings.Contains(err.Error(), "remote error: tls:"):
		hint = "the broker refused the TLS handshake: if its listener requires client certificates (mutual TLS), set tls_cert_file and tls_key_file to a certificate its truststore trusts"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
		hint = fmt.Sprintf("the broker closed the connection before answering (%s): security_protocol must match the broker's listener "+
			"(a TLS listener drops plaintext connections, a SASL listener drops connections that do not log in)", who)
	default:
		return err
	}
	return fmt.Errorf("%s: %w", hint, err)
}

// ACL is one Kafka ACL (ALLOW, any host) that invroute's principal needs.
type ACL struct {
	Resource   string   // TOPIC, GROUP or TRANSACTIONAL_ID
	Pattern    string   // LITERAL or PREFIXED
	Name       string   // the resource name or prefix
	Operations []string // READ, WRITE (each implies DESCRIBE), DESCRIBE_CONFIGS
}

// RequiredACLs lists the ACLs `invroute run` needs with o, and no more,
// when its topics exist (created beforehand by `invroute topics create`,
// which needs CREATE on the cluster or the topics). They follow from the
// topologies: READ on what a topology consumes (inputs, global tables) and
// restores (changelogs), WRITE on what it produces (outputs, changelogs,
// dead-letter), DESCRIBE_CONFIGS on the dead-letter topic (its
// max.message.bytes bounds dead letters; without it the engine assumes
// Kafka's default and logs a warning), READ on its consumer group and
// WRITE on its transactional ids (group + "-" + instance_id, so a prefix
// covers every instance).
func RequiredACLs(o Options) []ACL {
	topos := []*topology.Topology{inventory.Topology(inventory.TopologyOptions{Catalog: catalog.New(nil), Group: o.Group})}
	if o.Router {
		topos = append(topos, router.Topology(router.TopologyOptions{Group: o.RouterGroupName(), Catalog: catalog.New(nil),
			Availability: router.NewAvailability(), Loads: router.NewLoads()}))
		if o.screen() {
			topos = append(topos, screen.Topology(o.ScreenGroupName(), inventory.TopicDeadLetter, nil))
		}
	}
	const read, write, describeConfigs = "READ", "WRITE", "DESCRIBE_CONFIGS"
	ops := map[string]map[string]bool{}
	add := func(tp topology.Topic, op ...string) {
		name := o.TopicPrefix + string(tp)
		if ops[name] == nil {
			ops[name] = map[string]bool{}
		}
		for _, x := range op {
			ops[name][x] = true
		}
	}
	var acls []ACL
	for _, t := range topos {
		for _, in := range t.Inputs {
			add(in.Topic, read)
		}
		for _, s := range t.Stores {
			add(s.Changelog, read, write)
		}
		for _, out := range t.Outputs {
			add(out.Topic, write)
		}
		for _, g := range t.Globals {
			add(g.Topic, read)
		}
		add(t.DeadLetter, write, describeConfigs) // the engine sizes dead letters by the topic's max.message.bytes
		acls = append(acls,
			ACL{Resource: "GROUP", Pattern: "LITERAL", Name: t.Group, Operations: []string{read}},
			ACL{Resource: "TRANSACTIONAL_ID", Pattern: "PREFIXED", Name: t.Group + "-", Operations: []string{write}})
	}
	if o.HTTPAddr != "" && o.Dashboard {
		// the dashboard's tailer (dashboard.go) reads what it shows
		for _, tp := range []topology.Topic{inventory.TopicATS, router.TopicDecisions, router.TopicRequests, inventory.TopicDeadLetter} {
			add(tp, read)
		}
	}
	var topics []ACL
	for name, set := range ops {
		a := ACL{Resource: "TOPIC", Pattern: "LITERAL", Name: name}
		for _, op := range []string{read, write, describeConfigs} {
			if set[op] {
				a.Operations = append(a.Operations, op)
			}
		}
		topics = append(topics, a)
	}
	slices.SortFunc(topics, func(a, b ACL) int { return strings.Compare(a.Name, b.Name) })
	return append(topics, acls...)
}

// ACLTable renders acls as the Markdown table of docs/security.md.
func ACLTable(acls []ACL) string {
	var b strings.Builder
	b.WriteString("| resource | pattern | name | operations |\n|---|---|---|---|\n")
	for _, a := range acls {
		fmt.Fprintf(&b, "| %s | %s | `%s` | %s |\n", a.Resource, a.Pattern, a.Name, strings.Join(a.Operations, ", "))
	}
	return b.String()
}

// deniedTopics lists the topics of RequiredACLs(o) that Kafka does not let
// o's principal describe, one metadata request per topic; nil if it cannot
// tell.
func (o *Options) deniedTopics(extra []kgo.Opt) []string {
	sec, err := o.SecurityOpts()
	if err != nil {
		return nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(SplitBrokers(o.Brokers)...)}, sec...), extra...)...)
	if err != nil {
		return nil
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	var denied []string
	for _, a := range RequiredACLs(*o) {
		if a.Resource != "TOPIC" {
			continue
		}
		if _, err := adm.ListTopics(ctx, a.Name); errors.Is(err, kerr.TopicAuthorizationFailed) {
			denied = append(denied, a.Name)
		} else if err != nil && ctx.Err() != nil {
			return nil
		}
	}
	return denied
}
