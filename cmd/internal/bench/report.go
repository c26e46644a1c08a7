package bench

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Goals of the README's performance section.
const (
	goalRatio      = 0.5
	goalRSS        = 512 << 20
	goalWarm       = 5 * time.Second
	goalRestoreRPS = 100000
)

func goalLatency(cfg *config) time.Duration { return cfg.commitInterval + 100*time.Millisecond }

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "MISSED"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

// usPer returns CPU microseconds per record.
func usPer(cpu time.Duration, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(n)
}

func errText(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " (see stderr)"
	}
	if errors.Is(err, errSkipped) {
		return s
	}
	return "ERROR: " + s
}

// print writes the broker's table.
func (res *brokerResult) print(w io.Writer, cfg *config) {
	fmt.Fprintf(w, "== %s: %s ==\n", res.name, res.desc)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")) }
	row("#", "measure", "value", "goal")
	if res.ptErr != nil {
		row("1", "passthrough (bare franz-go GroupTransactSession)", errText(res.ptErr), "")
	} else {
		row("1", "passthrough (bare franz-go GroupTransactSession)", fmt.Sprintf("%.0f records/s (%d in %s; after first commit %.0f/s)",
			res.pt.rps(), res.pt.records, secs(res.pt.wall), res.pt.steadyRPS()), "")
	}
	if res.engErr != nil && res.eng.wall == 0 {
		row("", "engine (invroute run)", errText(res.engErr), "")
	} else {
		row("", "engine (invroute run)", fmt.Sprintf("%.0f movements/s (%d in %s; after first commit %.0f/s)",
			res.eng.rps(), res.eng.records, secs(res.eng.wall), res.eng.steadyRPS()), "")
	}
	ratioOK := false
	if res.ptErr == nil && res.eng.wall > 0 {
		ratio := res.eng.rps() / res.pt.rps()
		ratioOK = ratio >= goalRatio
		row("", "ratio engine/passthrough", fmt.Sprintf("%.2f", ratio), fmt.Sprintf(">= %.2f %s", goalRatio, verdict(ratioOK)))
	}
	if res.ptBytes != nil && res.engBytes != nil && res.pt.records > 0 && res.eng.records > 0 {
		per := func(n int64, recs int64) string { return fmt.Sprintf("%.0f B", float64(n)/float64(recs)) }
		row("", "bytes on the broker per input record", fmt.Sprintf("passthrough: in %s, out %s; engine: in %s, ats %s, changelog %s",
			per(res.ptBytes[res.ptIn], res.pt.records), per(res.ptBytes[res.ptOut], res.pt.records),
			per(res.engBytes[res.engIn], res.eng.records), per(res.engBytes[res.engATS], res.eng.records),
			per(res.engBytes[res.engChangelog], res.eng.records)), "")
	}
	if lr := res.lat; lr != nil && lr.seen > 0 {
		g := goalLatency(cfg)
		row("2", fmt.Sprintf("ATS latency at %.0f movements/s for %s", lr.achievedRate, secs(lr.duration)),
			fmt.Sprintf("p50 %s  p99 %s  max %s  (%d/%d probes; of which produce->ack p50 %s p99 %s)",
				ms(lr.p50), ms(lr.p99), ms(lr.max), lr.seen, lr.probes, ms(lr.ackP50), ms(lr.ackP99)),
			fmt.Sprintf("p99 <= %s %s", ms(g), verdict(lr.p99 <= g && lr.seen == lr.probes)))
	} else if res.latErr != nil {
		row("2", "ATS latency", errText(res.latErr), "")
	}
	if lr := res.ptLat; lr != nil && lr.seen > 0 {
		row("", "  same load through the passthrough", fmt.Sprintf("p50 %s  p99 %s  max %s  (%d/%d probes; produce->ack p50 %s p99 %s)",
			ms(lr.p50), ms(lr.p99), ms(lr.max), lr.seen, lr.probes, ms(lr.ackP50), ms(lr.ackP99)), "(broker baseline)")
	} else if res.ptLatErr != nil {
		row("", "  same load through the passthrough", errText(res.ptLatErr), "")
	}
	if res.eng.wall > 0 {
		where := "engine process only"
		row("3", "CPU per movement ("+where+")", fmt.Sprintf("%.1f µs user+sys (%s over %d movements, /proc/PID/stat)",
			usPer(res.eng.cpu, res.eng.records), secs(res.eng.cpu), res.eng.records), "")
		if res.ptErr == nil {
			row("", "CPU per record, passthrough process", fmt.Sprintf("%.1f µs user+sys", usPer(res.pt.cpu, res.pt.records)), "")
		}
		row("", "engine RSS at catch-up / peak", fmt.Sprintf("%s / %s", mib(res.eng.rss), mib(res.eng.hwm)), "")
		if res.name == "kfake" {
			row("", "note", "kfake runs inside the bench process, so its CPU is in neither figure", "")
		}
	}
	if s := res.scale; s != nil {
		row("4", fmt.Sprintf("state at scale: %d SKUs x %d nodes", s.skus, s.nodes), "", "")
		if s.load.wall > 0 {
			row("", "  load (pre-loaded receipts, invroute run)", fmt.Sprintf("%d movements at %.0f/s (%s; producing them %.0f/s)",
				s.load.records, s.load.rps(), secs(s.load.wall), s.produceRPS), "")
			row("", "  RSS at catch-up / peak (VmRSS / VmHWM)", fmt.Sprintf("%s / %s", mib(s.load.rss), mib(s.load.hwm)),
				fmt.Sprintf("<= %s %s", mib(goalRSS), verdict(s.load.hwm <= goalRSS)))
			row("", "  state dir / changelog end offsets", fmt.Sprintf("%s / %d", mib(s.stateBytes), s.changelogEnd), "")
		}
		if s.warmFirst > 0 {
			row("", "  warm restart after kill -9 -> first record", fmt.Sprintf("%s (%d changelog records replayed)", secs(s.warmFirst), s.warmRestored),
				fmt.Sprintf("<= %s %s", secs(goalWarm), verdict(s.warmFirst <= goalWarm)))
		}
		if s.coldFirst > 0 {
			row("", "  cold restore (empty state dir)", fmt.Sprintf("%d records in %s = %.0f records/s (%d partitions; assign+restore %s)",
				s.coldRestored, secs(s.coldRestoreTook), s.coldRPS(), s.coldRestoreParts, secs(s.coldAssignTook)),
				fmt.Sprintf(">= %d/s %s", goalRestoreRPS, verdict(s.coldRPS() >= goalRestoreRPS)))
			row("", "  cold restart -> first record", secs(s.coldFirst), "")
		}
	}
	if res.scaleErr != nil {
		row("4", "state at scale", errText(res.scaleErr), "")
	}
	tw.Flush()
	for _, err := range res.errs {
		if strings.Contains(err.Error(), "\n") {
			fmt.Fprintf(w, "%v\n", err)
		}
	}
	fmt.Fprintln(w)
}

// printSummary writes the lines to copy into the README.
func printSummary(w io.Writer, cfg *config, results []*brokerResult) {
	fmt.Fprintln(w, "== summary (copy into README) ==")
	for _, res := range results {
		b := "broker=" + res.name
		if res.ptErr == nil && res.eng.wall > 0 {
			ratio := res.eng.rps() / res.pt.rps()
			fmt.Fprintf(w, "%s passthrough_rps=%.0f engine_rps=%.0f ratio=%.2f goal_ratio=%.2f met=%t\n",
				b, res.pt.rps(), res.eng.rps(), ratio, goalRatio, ratio >= goalRatio)
		}
		if lr := res.lat; lr != nil && lr.seen > 0 {
			g := goalLatency(cfg)
			fmt.Fprintf(w, "%s ats_p50_ms=%.0f ats_p99_ms=%.0f ats_max_ms=%.0f at_rps=%.0f probes=%d/%d goal_p99_ms=%.0f met=%t\n",
				b, msf(lr.p50), msf(lr.p99), msf(lr.max), lr.achievedRate, lr.seen, lr.probes, msf(g), lr.p99 <= g && lr.seen == lr.probes)
		}
		if lr := res.ptLat; lr != nil && lr.seen > 0 {
			fmt.Fprintf(w, "%s passthrough_p50_ms=%.0f passthrough_p99_ms=%.0f passthrough_max_ms=%.0f at_rps=%.0f (broker baseline for the ATS latency)\n",
				b, msf(lr.p50), msf(lr.p99), msf(lr.max), lr.achievedRate)
		}
		if res.eng.wall > 0 {
			pt := ""
			if res.ptErr == nil {
				pt = fmt.Sprintf(" passthrough_cpu_us_per_record=%.1f", usPer(res.pt.cpu, res.pt.records))
			}
			fmt.Fprintf(w, "%s engine_cpu_us_per_movement=%.1f%s measured=engine_process_only_proc_stat\n",
				b, usPer(res.eng.cpu, res.eng.records), pt)
		}
		if s := res.scale; s != nil && s.load.wall > 0 {
			fmt.Fprintf(w, "%s scale_skus=%d scale_nodes=%d load_rps=%.0f rss_mib=%d hwm_mib=%d goal_rss_mib=%d met=%t\n",
				b, s.skus, s.nodes, s.load.rps(), s.load.rss>>20, s.load.hwm>>20, goalRSS>>20, s.load.hwm <= goalRSS)
			if s.warmFirst > 0 {
				fmt.Fprintf(w, "%s warm_restart_first_record_s=%.2f goal_s=%.0f met=%t\n", b, s.warmFirst.Seconds(), goalWarm.Seconds(), s.warmFirst <= goalWarm)
			}
			if s.coldFirst > 0 {
				fmt.Fprintf(w, "%s cold_restore_rps=%.0f cold_restored_records=%d cold_restore_s=%.2f cold_first_record_s=%.2f goal_restore_rps=%d met=%t\n",
					b, s.coldRPS(), s.coldRestored, s.coldRestoreTook.Seconds(), s.coldFirst.Seconds(), goalRestoreRPS, s.coldRPS() >= goalRestoreRPS)
			}
		}
		for _, err := range res.errs {
			fmt.Fprintf(w, "%s error=%q\n", b, firstLine(err.Error()))
		}
	}
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
