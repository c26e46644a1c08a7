package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// forwardTo runs Engine.forward of a query for /v1/ats/X to the server at
// addr, with the given query_timeout, and returns the relayed answer.
func forwardTo(t *testing.T, addr string, timeout time.Duration) *httptest.ResponseRecorder {
	t.Helper()
	return forwardLeft(t, addr, timeout, timeout)
}

// forwardLeft is forwardTo with only left of the query_timeout remaining
// (the rest spent finding the owner).
func forwardLeft(t *testing.T, addr string, timeout, left time.Duration) *httptest.ResponseRecorder {
	t.Helper()
	e := &Engine{opts: Options{InstanceID: "a", QueryTimeout: timeout}, queryState: queryState{httpClient: newForwardClient(timeout)}}
	r := httptest.NewRequest(http.MethodGet, "/v1/ats/X", nil)
	ctx, cancel := context.WithTimeout(r.Context(), left)
	defer cancel()
	rec := httptest.NewRecorder()
	e.forward(ctx, rec, r, member{id: "b", addr: addr, client: "b@" + addr}, 3)
	return rec
}

// TestForwardSlowOwner: an owner slower than the query's budget is
// reported as one that did not answer in time, not as unreachable; the
// owner is told the budget, less a margin for the way back.
func TestForwardSlowOwner(t *testing.T) {
	budget := make(chan string, 1)
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		budget <- r.Header.Get(HeaderBudget)
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer owner.Close()
	rec := forwardTo(t, strings.TrimPrefix(owner.URL, "http://"), 300*time.Millisecond)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "did not answer within query_timeout") {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	ms, err := strconv.Atoi(<-budget)
	if err != nil || ms <= 0 || ms >= 300 {
		t.Errorf("budget sent to the owner %d ms (%v): want a positive figure under the forwarder's 300", ms, err)
	}
}

// TestQueryBudget: a forwarded query takes the budget it is given when it
// is smaller than query_timeout; a query that was not forwarded, or a
// budget that does not parse, takes query_timeout.
func TestQueryBudget(t *testing.T) {
	for _, c := range []struct {
		forwarded bool
		budget    string
		want      time.Duration
	}{
		{false, "", 5 * time.Second},
		{false, "100", 5 * time.Second}, // without the forwarded header (a client can send both: it only shortens its own query)
		{true, "100", 100 * time.Millisecond},
		{true, "99999", 5 * time.Second},
		{true, "0", time.Millisecond},
		{true, "-5", time.Millisecond},
		{true, "x", 5 * time.Second},
		{true, "9223372036854775807", 5 * time.Second}, // would overflow a Duration
		{true, "18446744073710", 5 * time.Second},
	} {
		r := httptest.NewRequest(http.MethodGet, "/v1/ats/X", nil)
		if c.forwarded {
			r.Header.Set(HeaderForwarded, "b")
		}
		if c.budget != "" {
			r.Header.Set(HeaderBudget, c.budget)
		}
		if got := queryBudget(r, 5*time.Second); got != c.want {
			t.Errorf("forwarded %v budget %q: %v, want %v", c.forwarded, c.budget, got, c.want)
		}
	}
}

// TestForwardRedirect: a redirect from the owner's address (something
// else listens there: instances never redirect) is not followed.
func TestForwardRedirect(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderServedBy, "someone-else")
		writeJSON(w, http.StatusOK, ATSAnswer{SKU: "X"})
	}))
	defer other.Close()
	owner := httptest.NewServer(http.RedirectHandler(other.URL+"/v1/ats/X", http.StatusFound))
	defer owner.Close()
	rec := forwardTo(t, strings.TrimPrefix(owner.URL, "http://"), 2*time.Second)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "302") || rec.Header().Get(HeaderServedBy) != "" {
		t.Errorf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

// TestForwardTooLarge: an answer over the relay's bound is a 502 that
// says so, never a truncated 200.
func TestForwardTooLarge(t *testing.T) {
	for _, n := range []int{maxForwardedBytes, maxForwardedBytes + 1} {
		owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(bytes.Repeat([]byte(" "), n))
		}))
		rec := forwardTo(t, strings.TrimPrefix(owner.URL, "http://"), 10*time.Second)
		owner.Close()
		switch {
		case n <= maxForwardedBytes && (rec.Code != http.StatusOK || rec.Body.Len() != n):
			t.Errorf("%d bytes: %d, %d bytes relayed", n, rec.Code, rec.Body.Len())
		case n > maxForwardedBytes && (rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "larger than")):
			t.Errorf("%d bytes: %d %.200s", n, rec.Code, rec.Body)
		}
	}
}

// TestForwardClient: forwarded queries go to the owner directly, whatever
// HTTP proxy the environment names for other traffic (it would see every
// key asked, and may not reach the instances at all).
func TestForwardClient(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:9")
	tr, ok := newForwardClient(time.Second).Transport.(*http.Transport)
	if !ok {
		t.Fatal("not an *http.Transport")
	}
	if tr.Proxy != nil {
		req := httptest.NewRequest(http.MethodGet, "http://10.1.2.3:8080/v1/ats/X", nil)
		u, err := tr.Proxy(req)
		t.Errorf("forwarded queries take a proxy (for 10.1.2.3 now: %v, %v)", u, err)
	}
}

// TestIdleConnectionClosed: a kept-alive connection with no request for
// idleTimeout is closed by the server (it would hold a file descriptor
// and a goroutine for ever).
func TestIdleConnectionClosed(t *testing.T) {
	defer func(d time.Duration) { idleTimeout = d }(idleTimeout)
	idleTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := Listen(ctx, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	ask := func() error {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	if err := ask(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: %v, want it closed by the server (EOF)", err)
	}
}

// TestQueryCLIKeys: keys that are dot segments reach the server as keys,
// and a password in --addr never appears in an error.
func TestQueryCLIKeys(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ats/{sku}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, ATSAnswer{SKU: r.PathValue("sku")})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, key := range []string{".", "..", "a/../b", "...", "%2E", "a b?c#d"} {
		var out bytes.Buffer
		if err := QueryMain(context.Background(), "ats", []string{key, "--addr", srv.URL, "--json"}, &out); err != nil {
			t.Errorf("key %q: %v", key, err)
			continue
		}
		if !strings.Contains(out.String(), fmt.Sprintf("%q", key)) {
			t.Errorf("key %q: the server saw %s", key, out.String())
		}
	}
	for _, addr := range []string{"http://user:s3cret@127.0.0.1:1", "http://user:s3cret@127.0.0.1:80x"} {
		err := QueryMain(context.Background(), "ats", []string{"X", "--addr", addr, "--timeout", "2s"}, io.Discard)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("--addr %s with a password: %v", strings.Replace(addr, "s3cret", "***", 1), err)
		}
	}
}

// TestParseFlags: -h is flag.ErrHelp itself (the command exits 0); a bad
// flag is a FlagError, a usage error the flag package has printed.
func TestParseFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Bool("json", false, "")
	if err := ParseFlags(fs, []string{"-h"}); err != flag.ErrHelp {
		t.Errorf("-h: %v", err)
	}
	err := ParseFlags(fs, []string{"--bogus"})
	var fe *FlagError
	if !errors.As(err, &fe) || !errors.Is(err, flag.ErrHelp) || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("--bogus: %#v", err)
	}
	if err := ParseFlags(fs, []string{"--json"}); err != nil {
		t.Errorf("--json: %v", err)
	}
	// a mistyped flag: the problem, a close name and a pointer to -h, not
	// the whole usage
	var out bytes.Buffer
	fs = flag.NewFlagSet("ats", flag.ContinueOnError)
	fs.SetOutput(&out)
	fs.Bool("json", false, "print the JSON answer")
	fs.String("addr", "", "where")
	if err := ParseFlags(fs, []string{"--jsn"}); err == nil {
		t.Fatal("--jsn accepted")
	}
	if got := out.String(); !strings.Contains(got, "did you mean --json?") || !strings.Contains(got, "invroute ats -h lists the flags") || strings.Contains(got, "print the JSON answer") {
		t.Errorf("--jsn:\n%s", got)
	}
	out.Reset()
	if err := ParseFlags(fs, []string{"-h"}); err != flag.ErrHelp || !strings.Contains(out.String(), "print the JSON answer") {
		t.Errorf("-h: %v\n%s", err, out.String())
	}
}

// TestWrongMethod: a method other than GET on an endpoint is a 405 naming
// the method served, not a 404 "no such endpoint"; an unknown path stays a
// 404 whatever the method.
func TestWrongMethod(t *testing.T) {
	e := &Engine{opts: Options{InstanceID: "i1"}}
	srv := httptest.NewServer(e.apiHandler(nil))
	defer srv.Close()
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, "/v1/ats/X", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/v1/orders/O-1", http.StatusMethodNotAllowed},
		{http.MethodPut, "/healthz", http.StatusMethodNotAllowed},
		{http.MethodPost, "/nope", http.StatusNotFound},
		{http.MethodGet, "/nope", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code || (c.code == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "GET, HEAD") {
			t.Errorf("%s %s: %d (Allow %q), want %d", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), c.code)
		}
	}
}

// TestForwardStallMidAnswer: an owner that sends its headers and then
// stalls past the budget did not answer in time (not "broke off").
func TestForwardStallMidAnswer(t *testing.T) {
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "{")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer owner.Close()
	rec := forwardTo(t, strings.TrimPrefix(owner.URL, "http://"), 300*time.Millisecond)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "did not finish its answer within query_timeout") {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
}

// TestForwardNoTimeLeft: a query whose owner took the whole budget to
// find is not forwarded with a budget of nothing (and the owner blamed).
func TestForwardNoTimeLeft(t *testing.T) {
	asked := false
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked = true }))
	defer owner.Close()
	rec := forwardLeft(t, strings.TrimPrefix(owner.URL, "http://"), time.Second, 0)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "no time left") || asked {
		t.Errorf("%d %s (owner asked: %v)", rec.Code, rec.Body, asked)
	}
}

// TestServeShutdownGrace: a request in flight when the server is stopped
// is answered, and the wait returned by serve ends once it was.
func TestServeShutdownGrace(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	wait := serve(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	}), time.Minute)
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	cancel()
	wait()
	select {
	case s := <-got:
		if s != "done" {
			t.Errorf("the request in flight: %q", s)
		}
	case <-time.After(time.Second):
		t.Error("wait returned before the request in flight was answered")
	}
}

// TestForwardRelaysKnownLength: an answer whose length the owner sends
// (instances do) is relayed with it, whole.
func TestForwardRelaysKnownLength(t *testing.T) {
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderServedBy, "b")
		writeJSON(w, http.StatusOK, ATSAnswer{SKU: "X", ATS: 7})
	}))
	defer owner.Close()
	rec := forwardTo(t, strings.TrimPrefix(owner.URL, "http://"), 2*time.Second)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) ||
		rec.Header().Get(HeaderServedBy) != "b" || !strings.Contains(rec.Body.String(), `"ats": 7`) {
		t.Errorf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}
