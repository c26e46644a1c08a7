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
	res.printThroughput(row)
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
	res.printCPU(row)
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
	if len(res.rounds) > 0 || res.scale != nil {
		row("", "note", "sections 1-4 run `invroute run -router=false`: they measure the inventory on stock movements (an idle router would also read the whole ats topic as a replicated table)", "")
	}
	res.printRouting(row, cfg)
	res.printHostile(row)
	tw.Flush()
	for _, err := range res.errs {
		if strings.Contains(err.Error(), "\n") {
			fmt.Fprintf(w, "%v\n", err)
		}
	}
	fmt.Fprintln(w)
}

// printThroughput writes the throughput phase: one row per round, then the
// medians, which the goal is judged on.
func (res *brokerResult) printThroughput(row func(...string)) {
	if len(res.rounds) == 0 {
		if res.connErr != nil {
			row("1", "throughput", errText(res.connErr), "")
		}
		return
	}
	num := "1"
	if rd := res.warmup; rd != nil {
		row(num, rd.String()+" (discarded)", rd.summary(), "")
		num = ""
	}
	for _, rd := range res.rounds {
		row(num, "throughput "+rd.String(), rd.summary(), "")
		num = ""
	}
	if pt, n := res.ptRPS(); n > 0 {
		row("", fmt.Sprintf("passthrough (bare franz-go GroupTransactSession), median of %d", n),
			fmt.Sprintf("%.0f records/s (%d records per round)", pt, res.perRound(ptSide)), "")
	}
	if eng, n := res.engRPS(); n > 0 {
		row("", fmt.Sprintf("engine (invroute run -router=false), median of %d", n),
			fmt.Sprintf("%.0f movements/s (%d movements per round)", eng, res.perRound(engSide)), "")
	}
	if ratio, n := res.ratio(); n > 0 {
		lo, hi := res.ratioRange()
		row("", fmt.Sprintf("ratio engine/passthrough (median of %d rounds)", n),
			fmt.Sprintf("%.2f (rounds: %.2f to %.2f)", ratio, lo, hi),
			fmt.Sprintf(">= %.2f %s", goalRatio, verdict(ratio >= goalRatio)))
	}
	if rd := res.last(); rd.ptBytes != nil && rd.engBytes != nil && rd.ptOK() && rd.engOK() {
		per := func(n int64, recs int64) string { return fmt.Sprintf("%.0f B", float64(n)/float64(recs)) }
		row("", "bytes on the broker per input record (last round)", fmt.Sprintf("passthrough: in %s, out %s; engine: in %s, ats %s, changelog %s",
			per(rd.ptBytes[rd.ptIn], rd.pt.records), per(rd.ptBytes[rd.ptOut], rd.pt.records),
			per(rd.engBytes[rd.engIn], rd.eng.records), per(rd.engBytes[rd.engATS], rd.eng.records),
			per(rd.engBytes[rd.engChangelog], rd.eng.records)), "")
	}
}

// perRound is the records one side processed in a round (the same in all).
func (res *brokerResult) perRound(side func(*round) (catchUp, bool)) int64 {
	_, recs, n := res.cpuOf(side)
	if n == 0 {
		return 0
	}
	return recs / int64(n)
}

// summary is the round's row: both rates and their ratio, or what failed.
func (rd *round) summary() string {
	side := func(name, unit string, c catchUp, ok bool, err error) string {
		if !ok {
			if err == nil {
				return name + " not run"
			}
			return name + " " + errText(err)
		}
		return fmt.Sprintf("%s %.0f %s (%s; after first commit %.0f/s)", name, c.rps(), unit, secs(c.wall), c.steadyRPS())
	}
	s := side("passthrough", "records/s", rd.pt, rd.ptOK(), rd.ptErr) + "  " +
		side("engine", "movements/s", rd.eng, rd.engOK(), rd.engErr)
	if ratio, ok := rd.ratio(); ok {
		s += fmt.Sprintf("  ratio %.2f", ratio)
	}
	return s
}

// ratioRange is the lowest and highest per-round ratio: how noisy the
// machine was.
func (res *brokerResult) ratioRange() (lo, hi float64) {
	first := true
	for _, rd := range res.rounds {
		if x, ok := rd.ratio(); ok {
			if first || x < lo {
				lo = x
			}
			if first || x > hi {
				hi = x
			}
			first = false
		}
	}
	return lo, hi
}

// printCPU writes the CPU rows: summed over every round where the process
// caught up (CPU per record barely depends on the machine's noise, and the
// sum is one figure over all the work). RSS is the last round's engine's,
// the one that also ran the latency phase.
func (res *brokerResult) printCPU(row func(...string)) {
	cpu, recs, n := res.cpuOf(engSide)
	if n == 0 {
		return
	}
	row("3", fmt.Sprintf("CPU per movement (engine process only, sum of %d rounds)", n), fmt.Sprintf("%.1f µs user+sys (%s over %d movements, /proc/PID/stat)",
		usPer(cpu, recs), secs(cpu), recs), "")
	if cpu, recs, n := res.cpuOf(ptSide); n > 0 {
		row("", fmt.Sprintf("CPU per record, passthrough process (sum of %d rounds)", n), fmt.Sprintf("%.1f µs user+sys", usPer(cpu, recs)), "")
	}
	if rd := res.last(); rd.engOK() {
		row("", "engine RSS at catch-up / peak (last round)", fmt.Sprintf("%s / %s", mib(rd.eng.rss), mib(rd.eng.hwm)), "")
	}
	if res.name == "kfake" {
		row("", "note", "kfake runs inside the bench process, so its CPU is in neither figure", "")
	}
}

// printSummary writes the lines to copy into the README.
func printSummary(w io.Writer, cfg *config, q *qualityResult, results []*brokerResult) {
	fmt.Fprintln(w, "== summary (copy into README) ==")
	if q != nil {
		q.printSummary(w)
	}
	for _, res := range results {
		b := "broker=" + res.name
		if ratio, n := res.ratio(); n > 0 {
			pt, _ := res.ptRPS()
			eng, _ := res.engRPS()
			fmt.Fprintf(w, "%s passthrough_rps=%.0f engine_rps=%.0f ratio=%.2f rounds=%d goal_ratio=%.2f met=%t\n",
				b, pt, eng, ratio, n, goalRatio, ratio >= goalRatio)
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
		if cpu, recs, n := res.cpuOf(engSide); n > 0 {
			pt := ""
			if cpu, recs, n := res.cpuOf(ptSide); n > 0 {
				pt = fmt.Sprintf(" passthrough_cpu_us_per_record=%.1f", usPer(cpu, recs))
			}
			fmt.Fprintf(w, "%s engine_cpu_us_per_movement=%.1f%s cpu_rounds=%d measured=engine_process_only_proc_stat\n",
				b, usPer(cpu, recs), pt, n)
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
		res.printRoutingSummary(w, cfg)
		res.printHostileSummary(w)
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
