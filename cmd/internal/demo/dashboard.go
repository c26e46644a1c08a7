package demo

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"

	"github.com/invroute/invroute/cmd/internal/app"
)

// bindHTTP binds the engine's HTTP API (and dashboard) at o.HTTPAddr, or
// returns nil when it is off. A busy default port falls back to a free one.
func bindHTTP(opts *app.Options, o Options) (*app.ListenAPI, error) {
	if o.HTTPAddr == "" {
		return nil, nil
	}
	opts.HTTPAddr = o.HTTPAddr
	api, err := app.BindAPI(opts)
	if err != nil && o.DefaultAddr {
		host, _, _ := net.SplitHostPort(o.HTTPAddr)
		opts.HTTPAddr, opts.HTTPAdvertise = net.JoinHostPort(host, "0"), ""
		api, err = app.BindAPI(opts)
	}
	if err != nil {
		return nil, fmt.Errorf("demo: --http-addr: %w (another port: --http-addr 127.0.0.1:0; none: --http-addr off)", err)
	}
	return api, nil
}

// URL is the dashboard's URL for an API bound at addr; an unspecified host
// (":8080", "0.0.0.0:8080") is reached at localhost.
func URL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// openBrowser opens url with the desktop's opener, if there is one; it
// does nothing in CI (CI set), without a display on Linux, or when the
// opener is missing, and never waits for it.
func openBrowser(url string) {
	if os.Getenv("CI") != "" {
		return
	}
	var name string
	var args []string
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler"}
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return
		}
		name = "xdg-open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return
	}
	cmd := exec.Command(path, append(args, url)...)
	if cmd.Start() == nil {
		go func() { _ = cmd.Wait() }()
	}
}
