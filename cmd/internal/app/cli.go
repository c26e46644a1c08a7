package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// ErrProblems is returned by `invroute config check` when the file has
// problems (they are printed).
var ErrProblems = errors.New("config: the configuration has problems")

// ConfigMain is `invroute config check FILE`, `invroute config defaults`
// and `invroute config markdown` (the README's table).
func ConfigMain(args []string, stdout, stderr io.Writer) error {
	const help = "usage: invroute config check FILE | config defaults | config markdown"
	usage := fmt.Errorf("%s: %w", help, flag.ErrHelp)
	if len(args) == 0 {
		return usage
	}
	if slices.ContainsFunc(args, isHelp) {
		fmt.Fprintln(stdout, help)
		return nil
	}
	switch args[0] {
	case "check":
		if len(args) != 2 {
			return usage
		}
		_, err := Check(args[1])
		if err == nil {
			fmt.Fprintln(stdout, "OK")
			return nil
		}
		problems := strings.Split(err.Error(), "\n")
		fmt.Fprintf(stdout, "%s: %d problem(s):\n", args[1], len(problems))
		for _, p := range problems {
			fmt.Fprintln(stdout, "  "+p)
		}
		return ErrProblems
	case "defaults":
		if len(args) != 1 {
			return usage
		}
		return WriteDefaults(stdout)
	case "markdown":
		if len(args) != 1 {
			return usage
		}
		_, err := io.WriteString(stdout, MarkdownTable())
		return err
	}
	return usage
}

// isHelp: an argument asking for help.
func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" || a == "help" }

// QueryMain is `invroute ats SKU` and `invroute order ID`: it asks an
// instance's HTTP API (any instance: it forwards to the owner) and prints
// a table, or the JSON with --json.
func QueryMain(ctx context.Context, cmd string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "host:port of an instance's HTTP API (http_addr), env "+EnvPrefix+"API_ADDR")
	asJSON := fs.Bool("json", false, "print the JSON answer as it is")
	timeout := fs.Duration("timeout", 10*time.Second, "time allowed for the answer")
	if v, ok := lookupEnv(EnvPrefix + "API_ADDR"); ok {
		*addr = v
	}
	// the key may come before the flags
	var key string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		key, args = args[0], args[1:]
	}
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if key == "" && fs.NArg() > 0 {
		key = fs.Arg(0)
		if err := ParseFlags(fs, fs.Args()[1:]); err != nil { // flags may follow the key
			return err
		}
	}
	if err := NoArgs(fs); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("usage: invroute %s KEY [--addr host:port] [--json] [--timeout D]: %w", cmd, flag.ErrHelp)
	}
	path := "/v1/ats/"
	if cmd == "order" {
		path = "/v1/orders/"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	base := *addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base + path + pathSegment(key))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it quotes the URL, with any password in it
		}
		return fmt.Errorf("--addr: %w: %w", err, flag.ErrHelp)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it quotes the URL, with any password in it
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("asking %s: %w (no instance's http_addr is there: --addr host:port or %sAPI_ADDR names one)", u.Redacted(), err, EnvPrefix)
		}
		return fmt.Errorf("asking %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var ae apiError
		if json.Unmarshal(body, &ae) == nil && ae.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", ae.Error, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	if cmd == "order" {
		var a OrderAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			return err
		}
		return printOrder(stdout, &a)
	}
	var a ATSAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return err
	}
	return printATS(stdout, &a)
}

// pathSegment escapes key as one segment of a URL's path. The dot
// segments "." and ".." are escaped too: an HTTP server (Go's among them)
// would take them for the current and parent directory.
func pathSegment(key string) string {
	switch key {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(key)
}

func printATS(w io.Writer, a *ATSAnswer) error {
	fmt.Fprintf(w, "SKU %s: ATS %d (version %d; partition %d, served by %s)\n\n", a.SKU, a.ATS, a.Version, a.Partition, a.ServedBy)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tATS")
	for _, c := range a.Channels {
		fmt.Fprintf(tw, "%s\t%d\n", c.ChannelID, c.ATS)
	}
	fmt.Fprintln(tw, "\t")
	fmt.Fprintln(tw, "NODE\tON HAND\tRESERVED\tSAFETY\tAVAILABLE\tACTIVE")
	for _, n := range a.Nodes {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%t\n", n.NodeID, n.OnHand, n.Reserved, n.SafetyStock, n.Available, n.Active)
	}
	return tw.Flush()
}

func printOrder(w io.Writer, a *OrderAnswer) error {
	fmt.Fprintf(w, "order %s: %s (version %d; channel %s, placed %s; partition %d, served by %s)\n",
		a.OrderID, a.State, a.Version, a.ChannelID, a.PlacedAt.Format(time.RFC3339), a.Partition, a.ServedBy)
	if a.Reason != "" {
		fmt.Fprintf(w, "reason: %s\n", a.Reason)
	}
	if a.Screening {
		fmt.Fprintln(w, "waiting for the customer screen")
	}
	if a.Routing {
		fmt.Fprintf(w, "routing: attempt %d in progress\n", a.Attempt)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LINE\tSKU\tQTY\tSTATE\tNODE\tSHIPPED\tCANCELLED\tRETURNED")
	for _, l := range a.Lines {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\n", l.LineID, l.SKU, l.Qty, l.State, l.NodeID, l.QtyShipped, l.QtyCancelled, l.QtyReturned)
	}
	if len(a.Shipments) > 0 {
		fmt.Fprintln(tw, "\t")
		fmt.Fprintln(tw, "SHIPMENT\tNODE\tMETHOD\tLINES\tKM\tCOST (cents)")
		for _, s := range a.Shipments {
			var ls []string
			for _, l := range s.Lines {
				ls = append(ls, fmt.Sprintf("%s x%d", l.LineID, l.Qty))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%d\n", s.ShipmentID, s.NodeID, s.Method, strings.Join(ls, ", "), s.DistanceKm, s.CostCents)
		}
	}
	return tw.Flush()
}

var lookupEnv = os.LookupEnv
