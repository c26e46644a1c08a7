package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runner holds what one bench run owns: its temporary directory, the
// invroute binary, the subprocesses it started and the pre-generated
// movements. close stops every subprocess and removes the directory.
type runner struct {
	cfg    *config
	stderr io.Writer
	dir    string
	bin    string
	runID  string
	recs   []record

	mu    sync.Mutex
	procs []*proc
}

func newRunner(cfg *config, stderr io.Writer) (*runner, error) {
	dir, err := os.MkdirTemp("", "invroute-bench-")
	if err != nil {
		return nil, err
	}
	return &runner{cfg: cfg, stderr: stderr, dir: dir,
		runID: fmt.Sprintf("bench%d", time.Now().UnixNano()%1e10)}, nil
}

func (r *runner) close() {
	r.stopAll()
	if r.cfg.keepDir {
		r.progress("kept %s", r.dir)
		return
	}
	if err := os.RemoveAll(r.dir); err != nil {
		r.progress("removing %s: %v", r.dir, err)
	}
}

// stopAll kills every subprocess still running.
func (r *runner) stopAll() {
	r.mu.Lock()
	procs := r.procs
	r.procs = nil
	r.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
}

func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.stderr, "bench %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// prepareBinary finds the invroute binary: -engine-bin, this process when
// it is invroute (go run ./cmd/invroute), else one built with go build.
func (r *runner) prepareBinary(ctx context.Context) error {
	if r.cfg.engineBin != "" {
		r.bin = r.cfg.engineBin
		return nil
	}
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "invroute" {
		r.bin = exe
		return nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(r.dir, "invroute")
	r.progress("building %s with %s build", out, goBin)
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, goBin, "build", "-o", out, "github.com/invroute/invroute/cmd/invroute")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench: go build of invroute (use -engine-bin): %v\n%s", err, b)
	}
	r.bin = out
	return nil
}

// proc is a subprocess with its output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{}
	waitErr error
}

// start runs the invroute binary with args; its stdout and stderr go to
// <dir>/<name>.log.
func (r *runner) start(name string, args ...string) (*proc, error) {
	logPath := filepath.Join(r.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(r.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group (a terminal's Ctrl-C reaches only the bench, which
	// then stops its children), and killed if the bench dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: starting %s: %w", name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to finish (SIGTERM: the engine completes its open
// transaction) and kills it after grace.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return p.waitErr
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(grace):
		p.kill()
		return fmt.Errorf("bench: %s did not stop within %s; killed", p.name, grace)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// cpu returns the user+system CPU time of the process so far, from
// /proc/PID/stat (clock ticks of 10 ms, USER_HZ=100 on Linux).
func (p *proc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bench: malformed /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("bench: short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14: utime
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15: stime
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// mem returns VmRSS and VmHWM of the process in bytes.
func (p *proc) mem() (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		var kb int64
		switch {
		case strings.HasPrefix(l, "VmRSS:"):
			fmt.Sscanf(strings.TrimPrefix(l, "VmRSS:"), "%d", &kb)
			rss = kb << 10
		case strings.HasPrefix(l, "VmHWM:"):
			fmt.Sscanf(strings.TrimPrefix(l, "VmHWM:"), "%d", &kb)
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	lines := p.lines()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *proc) lines() []string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// failure describes why a process is not usable, with its last log lines.
func (p *proc) failure() error {
	return fmt.Errorf("bench: %s exited (%v); last log lines:\n%s", p.name, p.waitErr, p.tail(15))
}
