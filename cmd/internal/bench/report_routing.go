package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// print writes the routing quality section: one column per strategy, then
// the optimality checks.
func (q *qualityResult) print(w io.Writer) {
	fmt.Fprintln(w, "== routing quality: generated EU scenario (pure computation, no broker) ==")
	fmt.Fprintf(w, "scenario: %d nodes (%d DCs/3PLs, %d ship-enabled stores) in FR, DE, IT, ES, NL, PL; %d SKUs of Zipf-skewed popularity; %d orders of 1-6 lines shipping around %d cities; %d units in stock for %d ordered\n",
		q.nodes, q.dcs, q.nodes-q.dcs, q.skus, q.orders, shipToCities(), q.stock, q.demand)
	fmt.Fprintf(w, "strategies: invroute = router.Eligible + router.PlanOrder; first = per line the first node with its quantity in a fixed order (%s, ..., DCs and 3PLs then stores); nearest = per line the nearest node with its quantity; a line no node has whole is split across nodes in that order\n", q.firstIDs)
	fmt.Fprintln(w, "each strategy plans the same orders in the same sequence on its own copy of the stock and consumes it; SHIP_COMPLETE orders that cannot ship whole ship nothing; capacity unlimited; distance = node -> ship-to, each node once per order")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")) }
	row("#", "measure", "invroute", "first", "nearest", "goal")
	inv, first := &q.strats[0], &q.strats[1]
	each := func(f func(s *stratStats) string) []string {
		var out []string
		for i := range q.strats {
			out = append(out, f(&q.strats[i]))
		}
		return out
	}
	ratio := q.splitRatio()
	row(append(append([]string{"R1", "split-shipment rate (orders with >1 shipment / orders shipped)"}, each(func(s *stratStats) string {
		return fmt.Sprintf("%.1f%% (%d/%d)", 100*s.splitRate(), s.split, s.shipped)
	})...), fmt.Sprintf("<= %.2f x first: %.2f %s", goalSplitRatio, ratio, verdict(ratio <= goalSplitRatio+1e-9)))...)
	row(append(append([]string{"", "mean distance per routed order"}, each(func(s *stratStats) string {
		return fmt.Sprintf("%.0f km", s.meanKm())
	})...), fmt.Sprintf("<= first %s", verdict(inv.meanKm() <= first.meanKm())))...)
	row(append(append([]string{"", "mean cost per routed order (shipment cost + 1 c/km)"}, each(func(s *stratStats) string {
		return fmt.Sprintf("%.2f EUR", s.meanCost()/100)
	})...), "")...)
	row(append(append([]string{"", "shipments per routed order"}, each(func(s *stratStats) string {
		return fmt.Sprintf("%.3f", ratioOf(float64(s.shipments), float64(s.shipped)))
	})...), "")...)
	row(append(append([]string{"", "lines split across nodes by quantity"}, each(func(s *stratStats) string {
		return fmt.Sprint(s.splitLines)
	})...), "")...)
	row(append(append([]string{"", "units backordered (the same for all: with unlimited capacity what ships depends only on the network total per SKU)"}, each(func(s *stratStats) string {
		return fmt.Sprintf("%d of %d (%.1f%%)", s.backordered, s.units, 100*ratioOf(float64(s.backordered), float64(s.units)))
	})...), "")...)
	for _, s := range q.strats {
		if s.overplanned > 0 {
			row("", "ERROR: units planned beyond a node's stock", s.name, fmt.Sprint(s.overplanned))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "verdict: invroute splits %.2f x as often as first (goal <= %.2f) and ships %.0f km per order against %.0f: %s\n",
		ratio, goalSplitRatio, inv.meanKm(), first.meanKm(), verdict(q.splitGoalMet()))

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row = func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")) }
	row("#", "optimality: planner's (shipments, [RUSH: km,] cost) = exhaustive optimum", "value", "goal")
	optRow := func(num, what string, s *optStats, skipped string) {
		row(num, what, fmt.Sprintf("%d/%d = %.2f%%%s", s.equal, s.checked, 100*s.share(), skipped),
			fmt.Sprintf("%.0f%% %s", 100*goalOptimalShare, verdict(s.checked > 0 && s.share() >= goalOptimalShare)))
	}
	optRow("R2", fmt.Sprintf("%d random instances: <= %d lines (distinct SKUs), <= %d EU nodes", q.randOpt.checked, optMaxLines, optMaxNodes), &q.randOpt, "")
	optRow("", fmt.Sprintf("the scenario's orders of <= %d lines, as invroute planned them", optMaxLines), &q.scenOpt,
		fmt.Sprintf(" (not compared: %d with a line no node had whole, %d too large)", q.scenOpt.split, q.scenOpt.large))
	optRow("", fmt.Sprintf("%d random instances with one SKU on two lines", q.repOpt.checked), &q.repOpt, "")
	tw.Flush()
	for _, o := range []*optStats{&q.randOpt, &q.scenOpt, &q.repOpt} {
		for _, m := range o.misses {
			fmt.Fprintf(w, "  not optimal: %s\n", m)
		}
	}
	fmt.Fprintf(w, "(computed in %s)\n\n", secs(q.took))
}

// splitRatio is invroute's split rate over the first baseline's.
func (q *qualityResult) splitRatio() float64 {
	return ratioOf(q.strats[0].splitRate(), q.strats[1].splitRate())
}

// splitGoalMet: at least 30% fewer split shipments than the first
// baseline, and no more distance.
func (q *qualityResult) splitGoalMet() bool {
	inv, first := &q.strats[0], &q.strats[1]
	fewer := q.splitRatio() <= goalSplitRatio+1e-9
	if first.splitRate() == 0 {
		fewer = inv.splitRate() == 0
	}
	return fewer && inv.meanKm() <= first.meanKm()
}

func shipToCities() int {
	n := 0
	for _, c := range shipToCountries {
		n += len(c.cities)
	}
	return n
}

// printSummary writes the quality section's summary lines.
func (q *qualityResult) printSummary(w io.Writer) {
	inv, first, near := &q.strats[0], &q.strats[1], &q.strats[2]
	fmt.Fprintf(w, "routing orders=%d split_rate=%.4f first_split_rate=%.4f nearest_split_rate=%.4f split_ratio_vs_first=%.2f mean_km=%.0f first_mean_km=%.0f nearest_mean_km=%.0f goal_split_ratio=%.2f met=%t\n",
		q.orders, inv.splitRate(), first.splitRate(), near.splitRate(), q.splitRatio(),
		inv.meanKm(), first.meanKm(), near.meanKm(), goalSplitRatio, q.splitGoalMet())
	met := func(s *optStats) bool { return s.checked > 0 && s.share() >= goalOptimalShare }
	fmt.Fprintf(w, "routing optimal_share=%.4f optimal_instances=%d scenario_optimal_share=%.4f scenario_orders_compared=%d repeated_sku_optimal_share=%.4f repeated_sku_instances=%d goal_share=%.2f met=%t repeated_sku_met=%t\n",
		q.randOpt.share(), q.randOpt.checked, q.scenOpt.share(), q.scenOpt.checked, q.repOpt.share(), q.repOpt.checked,
		goalOptimalShare, met(&q.randOpt) && met(&q.scenOpt), met(&q.repOpt))
}

// printRouting writes the broker's routing rows.
func (res *brokerResult) printRouting(row func(...string), cfg *config) {
	rr := res.route
	if rr == nil {
		if res.routeErr != nil {
			row("5", "routing", errText(res.routeErr), "")
		}
		return
	}
	stock := "stock not loaded"
	if rr.stock.wall > 0 {
		stock = fmt.Sprintf("stock: %d receipts loaded at %.0f/s with the router off", rr.receipts, rr.stock.rps())
	}
	row("5", fmt.Sprintf("routing: %d EU-scenario orders pre-loaded, invroute run (router on)", rr.orders), stock, "")
	if rr.caught.wall > 0 {
		steady := ""
		if v := rr.caught.steadyRPS(); v > 0 {
			steady = fmt.Sprintf("; after first commit %.0f/s", v)
		}
		row("", "  orders/s: router group's committed offsets reach the end", fmt.Sprintf("%.0f orders/s (%s from process start%s)",
			rr.caught.rps(), secs(rr.caught.wall), steady), "")
	}
	if rr.decidedWall > 0 {
		row("", "  orders/s: every decision visible (read_committed)", fmt.Sprintf("%.0f orders/s (%s from process start); %s",
			rr.decidedRPS(), secs(rr.decidedWall), rr.decided), "")
		row("", "  CPU per order (engine process, router + inventory, start-up included)", fmt.Sprintf("%.0f µs user+sys (%s)",
			usPer(rr.decidedCPU, int64(rr.orders)), secs(rr.decidedCPU)), "")
	}
	if lr := rr.lat; lr != nil && lr.seen > 0 {
		g := goalDecisionLatency(cfg)
		row("", fmt.Sprintf("  order -> decision latency at %.0f orders/s for %s", lr.achievedRate, secs(lr.duration)),
			fmt.Sprintf("p50 %s  p99 %s  max %s  (%d/%d decided)", ms(lr.p50), ms(lr.p99), ms(lr.max), lr.seen, lr.sent),
			fmt.Sprintf("p99 <= 3 x %s + 100ms = %s %s", ms(cfg.commitInterval), ms(g), verdict(lr.p99 <= g && lr.seen == lr.sent)))
		row("", "    of which order -> first reservation result (router + inventory)", fmt.Sprintf("p50 %s  p99 %s", ms(lr.resP50), ms(lr.resP99)), "")
		row("", fmt.Sprintf("    warm-up: first %s of the load after idle, not counted", secs(routeWarmup)),
			fmt.Sprintf("p99 %s  max %s  (%d/%d decided)", ms(lr.warmP99), ms(lr.warmMax), lr.warmSeen, lr.warmSent), "")
		row("", "    decisions of the latency phase (warm-up included)", lr.decided.String(), "")
		if lr.warmMax > g {
			row("", "    note", "after an idle spell each hop can add up to 500ms: the engine ends a transaction every commit interval, also an empty one, and franz-go's End after a commit without offsets holds its lock 500ms (no TxnOffsetCommit response tells it KIP-447 is there); the next End waits", "")
		}
	} else if rr.latErr != nil {
		row("", "  order -> decision latency", errText(rr.latErr), "")
	}
	if res.routeErr != nil {
		row("", "  routing", errText(res.routeErr), "")
	}
}

// printRoutingSummary writes the broker's routing summary line.
func (res *brokerResult) printRoutingSummary(w io.Writer, cfg *config) {
	rr := res.route
	if rr == nil || rr.caught.wall <= 0 {
		return
	}
	s := fmt.Sprintf("broker=%s orders_rps=%.0f decided_rps=%.0f routing_orders=%d routed=%d", res.name, rr.caught.rps(), rr.decidedRPS(), rr.orders, rr.decided.outcomes["ROUTED"])
	if lr := rr.lat; lr != nil && lr.seen > 0 {
		g := goalDecisionLatency(cfg)
		s += fmt.Sprintf(" decision_p50_ms=%.0f decision_p99_ms=%.0f decision_max_ms=%.0f at_rps=%.0f decided=%d/%d goal_p99_ms=%.0f met=%t",
			msf(lr.p50), msf(lr.p99), msf(lr.max), lr.achievedRate, lr.seen, lr.sent, msf(g), lr.p99 <= g && lr.seen == lr.sent)
	}
	fmt.Fprintln(w, s)
}
