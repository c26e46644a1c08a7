package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// secureBroker is a Kafka broker of its own, started by deploy/kafka/kafka.sh
// in its security mode: SASL_SSL (PLAIN, SCRAM-SHA-512) on sasl, mutual TLS
// on ssl, the StandardAuthorizer with super users User:broker and
// User:admin. It never touches the default broker of the other tests.
type secureBroker struct {
	sasl, ssl string // host:port of the SASL_SSL and the SSL (mTLS) listener
	pki       *testPKI
	passwords map[string]string // SASL users: admin (super user), app (ACLs only)
}

// javaFound reports whether kafka.sh can find a Java (it checks the
// version itself).
func javaFound() bool {
	if h := os.Getenv("JAVA_HOME"); h != "" {
		if _, err := os.Stat(filepath.Join(h, "bin", "java")); err == nil {
			return true
		}
	}
	if _, err := exec.LookPath("java"); err == nil {
		return true
	}
	m, _ := filepath.Glob("/usr/lib/jvm/*/bin/java")
	return len(m) > 0
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

func randomPassword(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pw" + hex.EncodeToString(b)
}

// startSecureBroker starts the broker and stops and wipes it when t ends.
// Without Java it skips, unless INVROUTE_REQUIRE_KAFKA=1.
func startSecureBroker(t *testing.T) *secureBroker {
	t.Helper()
	if testing.Short() {
		t.Skip("security tests start their own Kafka broker: not in -short mode")
	}
	if !javaFound() {
		if os.Getenv("INVROUTE_REQUIRE_KAFKA") == "1" {
			t.Fatal("INVROUTE_REQUIRE_KAFKA=1 but no Java found: the security tests need Java 17+ to start their own Kafka broker")
		}
		t.Skip("no Java found: the security tests need Java 17+ (and Maven on first run) to start a Kafka broker with SASL_SSL; set INVROUTE_REQUIRE_KAFKA=1 to make this a failure")
	}
	script, err := filepath.Abs("../../../deploy/kafka/kafka.sh")
	if err != nil {
		t.Fatal(err)
	}
	b := &secureBroker{passwords: map[string]string{"admin": randomPassword(t), "app": randomPassword(t)}}
	b.pki = newTestPKI(t, t.TempDir(), "admin", "app")
	users := fmt.Sprintf("admin:%s\napp:%s\n", b.passwords["admin"], b.passwords["app"])
	if err := os.WriteFile(filepath.Join(b.pki.dir, "users"), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t, 3)
	b.sasl, b.ssl = fmt.Sprintf("127.0.0.1:%d", p[0]), fmt.Sprintf("127.0.0.1:%d", p[2])
	data := filepath.Join(os.TempDir(), fmt.Sprintf("invroute-kafka-sec-%d-%d", os.Getpid(), p[0]))
	env := append(os.Environ(),
		fmt.Sprintf("KAFKA_PORT=%d", p[0]),
		fmt.Sprintf("KAFKA_CONTROLLER_PORT=%d", p[1]),
		fmt.Sprintf("KAFKA_SSL_PORT=%d", p[2]),
		"INVROUTE_KAFKA_DATA="+data,
		"KAFKA_SECURITY=sasl_ssl",
		"KAFKA_SECURITY_DIR="+b.pki.dir,
		"KAFKA_SASL_MECHANISMS=PLAIN,SCRAM-SHA-512",
		"KAFKA_AUTHORIZER=1",
		"KAFKA_SUPER_USERS=User:admin",
		"KAFKA_HEAP_OPTS=-Xms128m -Xmx512m",
		"KAFKA_EXTRA_PROPS=",
		"KAFKA_STOP_TIMEOUT=5", // wiped afterwards: no need for a graceful shutdown
	)
	kafka := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		t0 := time.Now()
		defer func() { t.Logf("secured broker stopped and wiped in %v", time.Since(t0).Round(time.Millisecond)) }()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if out, err := kafka(ctx, "down", "--wipe"); err != nil {
			t.Errorf("kafka.sh down --wipe: %v\n%s", err, out)
		}
		os.Remove(data + ".lock") // kafka.sh's flock file next to the data dir
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	out, err := kafka(ctx, "up")
	if err != nil {
		t.Fatalf("kafka.sh up (KAFKA_SECURITY=sasl_ssl): %v\n%s", err, out)
	}
	if !strings.Contains(out, "KAFKA_BROKERS="+b.sasl) {
		t.Fatalf("kafka.sh up printed no KAFKA_BROKERS=%s:\n%s", b.sasl, out)
	}
	t.Logf("secured broker up in %v: SASL_SSL %s, mTLS %s", time.Since(t0).Round(time.Millisecond), b.sasl, b.ssl)
	return b
}

// scram returns options for user over SASL_SSL with SCRAM-SHA-512, the
// password in a file.
func (b *secureBroker) scram(t *testing.T, user string) Options {
	o := Defaults()
	o.Brokers = b.sasl
	o.SecurityProtocol = ProtocolSASLSSL
	o.SASLMechanism = MechanismScramSHA512
	o.SASLUsername = user
	o.SASLPasswordFile = filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(o.SASLPasswordFile, []byte(b.passwords[user]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o.TLSCAFile = b.pki.ca
	return o
}

// plain returns options for user over SASL_SSL with PLAIN.
func (b *secureBroker) plain(user string) Options {
	o := Defaults()
	o.Brokers = b.sasl
	o.SecurityProtocol = ProtocolSASLSSL
	o.SASLMechanism = MechanismPlain
	o.SASLUsername = user
	o.SASLPassword = Secret(b.passwords[user])
	o.TLSCAFile = b.pki.ca
	return o
}

// mtls returns options for the client certificate of name on the SSL
// listener.
func (b *secureBroker) mtls(name string) Options {
	o := Defaults()
	o.Brokers = b.ssl
	o.SecurityProtocol = ProtocolSSL
	o.TLSCAFile = b.pki.ca
	o.TLSCertFile = b.pki.cert(name)
	o.TLSKeyFile = b.pki.key(name)
	return o
}
