package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Targets of the Go tracker.
const (
	targetPeers        = 19000
	targetKiBPerPeer   = 6.0
	targetCPUVsBTT     = 0.1
	targetP99MS        = 10.0
	targetLatencyAtRPS = 2000.0
)

// machineInfo describes the machine the benchmark ran on.
type machineInfo struct {
	Cores        int    `json:"cores"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

// Target is the verdict on one target of the Go tracker.
type Target struct {
	Name string `json:"name"`
	// Status is PASS, MISS or N/A (not measurable in this run).
	Status string `json:"status"`
	Detail string `json:"detail"`
}

// Ratios compares ours with bittorrent-tracker (ours divided by btt).
type Ratios struct {
	CPUPerOffer    float64 `json:"cpu_per_offer"`
	RSSPerIdlePeer float64 `json:"rss_per_idle_peer"`
	OfferP99       float64 `json:"offer_p99"`
	AnswerP99      float64 `json:"answer_p99"`
}

// Results is the whole outcome of a run, also printed with -json.
type Results struct {
	Options  options          `json:"options"`
	Machine  machineInfo      `json:"machine"`
	Started  string           `json:"started"`
	Trackers []*TrackerResult `json:"trackers"`
	Ratios   *Ratios          `json:"ratios,omitempty"`
	Targets  []Target         `json:"targets"`
}

// tracker returns the result for name, or nil.
func (r *Results) tracker(name string) *TrackerResult {
	for _, t := range r.Trackers {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// loaded reports whether t got through the load phase.
func loaded(t *TrackerResult) bool { return t != nil && len(t.Phases) >= 3 }

// ratio returns a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// evaluate computes the ratios and the target verdicts.
func (r *Results) evaluate() {
	ours, btt := r.tracker("ours"), r.tracker("btt")
	if loaded(ours) && loaded(btt) {
		r.Ratios = &Ratios{
			CPUPerOffer:    ratio(ours.CPUSecondsPer1kOffers, btt.CPUSecondsPer1kOffers),
			RSSPerIdlePeer: ratio(ours.RSSPerIdlePeerKiB, btt.RSSPerIdlePeerKiB),
			OfferP99:       ratio(ours.OfferP99MS, btt.OfferP99MS),
			AnswerP99:      ratio(ours.AnswerP99MS, btt.AnswerP99MS),
		}
	}
	o := r.Options
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	na := func(name, why string) Target { return Target{Name: name, Status: "N/A", Detail: why} }

	name := fmt.Sprintf("%d concurrent peers held", targetPeers)
	switch {
	case ours == nil || len(ours.Phases) == 0:
		r.Targets = append(r.Targets, na(name, "ours was not measured"))
	case o.Peers < targetPeers:
		r.Targets = append(r.Targets, na(name, fmt.Sprintf("run with -peers %d (this run: %d, all held: %v)",
			targetPeers, o.Peers, ours.PeersConnected == int64(o.Peers) && ours.PeersAfterLoad == int64(o.Peers))))
	default:
		ok := ours.PeersConnected >= targetPeers && ours.PeersAfterLoad >= targetPeers
		r.Targets = append(r.Targets, Target{name, verdict(ok),
			fmt.Sprintf("%d connected, %d still connected after the load", ours.PeersConnected, ours.PeersAfterLoad)})
	}

	name = fmt.Sprintf("<= %g KiB RSS per idle connected peer", targetKiBPerPeer)
	if ours == nil || len(ours.Phases) < 2 {
		r.Targets = append(r.Targets, na(name, "ours was not measured"))
	} else {
		d := fmt.Sprintf("%.2f KiB", ours.RSSPerIdlePeerKiB)
		if ours.PeersConnected < 5000 {
			d += fmt.Sprintf(" (only %d peers: the runtime's fixed costs weigh in; use -peers 19000)", ours.PeersConnected)
		}
		r.Targets = append(r.Targets, Target{name, verdict(ours.RSSPerIdlePeerKiB <= targetKiBPerPeer), d})
	}

	name = fmt.Sprintf("<= %g x bittorrent-tracker's CPU per relayed offer", targetCPUVsBTT)
	if r.Ratios == nil || btt.CPUSecondsPer1kOffers == 0 || ours.CPUSecondsPer1kOffers == 0 {
		r.Targets = append(r.Targets, na(name, "needs both trackers through the load phase, with relayed offers"))
	} else {
		r.Targets = append(r.Targets, Target{name, verdict(r.Ratios.CPUPerOffer <= targetCPUVsBTT),
			fmt.Sprintf("%.3f x (%.4f vs %.4f CPU s per 1k offers)", r.Ratios.CPUPerOffer,
				ours.CPUSecondsPer1kOffers, btt.CPUSecondsPer1kOffers)})
	}

	name = fmt.Sprintf("p99 relay latency < %g ms at %g announces/s", targetP99MS, targetLatencyAtRPS)
	if !loaded(ours) || ours.OffersRelayedPerSec == 0 {
		r.Targets = append(r.Targets, na(name, "ours relayed no offer"))
	} else {
		p99 := max(ours.OfferP99MS, ours.AnswerP99MS)
		d := fmt.Sprintf("offer p99 %.2f ms, answer p99 %.2f ms at %.0f announces/s sent", ours.OfferP99MS,
			ours.AnswerP99MS, ours.AnnouncesSentPerSec)
		st := verdict(p99 < targetP99MS)
		if ours.AnnouncesSentPerSec < 0.95*targetLatencyAtRPS {
			d += fmt.Sprintf(" (below %g/s: indicative only; use -rate %g)", targetLatencyAtRPS, targetLatencyAtRPS)
			if st == "PASS" {
				st = "N/A"
			}
		}
		r.Targets = append(r.Targets, Target{name, st, d})
	}
}

// writeJSON prints the results as indented JSON.
func (r *Results) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeText prints the results as a table.
func (r *Results) writeText(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "\nWebTorrent tracker benchmark: %d peers in %d swarms, %g announces/s (5 offers each) for %s, %d workers\n",
		o.Peers, o.Swarms, o.Rate, o.Duration, o.Workers)
	fmt.Fprintf(w, "machine: %d cores, load average %s at start, %s at end\n\n", r.Machine.Cores,
		r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "\t"
	for _, t := range r.Trackers {
		header += trackerTitle(t.Name) + "\t"
	}
	both := r.Ratios != nil
	if both {
		header += "ours/btt\t"
	}
	fmt.Fprintln(tw, header)
	row := func(label string, ratio func(a, b float64) string, f func(t *TrackerResult) (float64, string)) {
		line := label + "\t"
		var vals []float64
		for _, t := range r.Trackers {
			v, s := f(t)
			vals = append(vals, v)
			line += s + "\t"
		}
		if both {
			if ratio != nil && len(vals) == 2 {
				ours, btt := vals[0], vals[1]
				if r.Trackers[0].Name != "ours" {
					ours, btt = btt, ours
				}
				line += ratio(ours, btt)
			}
			line += "\t"
		}
		fmt.Fprintln(tw, line)
	}
	ratioText := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f", a/b)
	}
	num := func(format string, get func(t *TrackerResult) float64) func(t *TrackerResult) (float64, string) {
		return func(t *TrackerResult) (float64, string) {
			v := get(t)
			return v, fmt.Sprintf(format, v)
		}
	}
	phase := func(t *TrackerResult, name string) *PhaseResult {
		for i := range t.Phases {
			if t.Phases[i].Name == name {
				return &t.Phases[i]
			}
		}
		return &PhaseResult{Stats: &Stats{}}
	}

	row("peers connected", nil, num("%.0f", func(t *TrackerResult) float64 { return float64(t.PeersConnected) }))
	row("connect failures", nil, num("%.0f", func(t *TrackerResult) float64 { return float64(t.ConnectFailures) }))
	row("connect phase (s)", nil, num("%.1f", func(t *TrackerResult) float64 { return t.ConnectSeconds }))
	row("tracker open files limit", nil, func(t *TrackerResult) (float64, string) { return 0, t.FileLimit })
	row("RSS before connect (MiB)", nil, num("%.1f", func(t *TrackerResult) float64 { return float64(t.RSSBaseKiB) / 1024 }))
	row("RSS idle, all connected (MiB)", nil, num("%.1f", func(t *TrackerResult) float64 { return float64(t.RSSIdleKiB) / 1024 }))
	row("RSS per idle peer (KiB)", ratioText, num("%.2f", func(t *TrackerResult) float64 { return t.RSSPerIdlePeerKiB }))
	row("RSS peak (MiB)", ratioText, num("%.1f", func(t *TrackerResult) float64 { return float64(t.RSSPeakKiB) / 1024 }))
	row("RSS after disconnect (MiB)", nil, num("%.1f", func(t *TrackerResult) float64 { return float64(t.RSSAfterCloseKiB) / 1024 }))
	row("idle CPU (cores)", nil, num("%.3f", func(t *TrackerResult) float64 { return phase(t, "idle").TrackerCores }))
	row("announces/s sent", nil, num("%.0f", func(t *TrackerResult) float64 { return t.AnnouncesSentPerSec }))
	row("announces/s acknowledged", nil, num("%.0f", func(t *TrackerResult) float64 { return t.AcksPerSec }))
	row("relayed offers/s received", nil, num("%.0f", func(t *TrackerResult) float64 { return t.OffersRelayedPerSec }))
	row("relayed answers/s received", nil, num("%.0f", func(t *TrackerResult) float64 { return t.AnswersRelayedPerSec }))
	row("offers relayed / relayable", nil, num("%.3f", func(t *TrackerResult) float64 { return t.RelayRatio }))
	row("offer relay p50 (ms)", ratioText, num("%.2f", func(t *TrackerResult) float64 { return t.OfferP50MS }))
	row("offer relay p99 (ms)", ratioText, num("%.2f", func(t *TrackerResult) float64 { return t.OfferP99MS }))
	row("offer relay max (ms)", nil, num("%.2f", func(t *TrackerResult) float64 { return t.OfferMaxMS }))
	row("answer relay p50 (ms)", ratioText, num("%.2f", func(t *TrackerResult) float64 { return t.AnswerP50MS }))
	row("answer relay p99 (ms)", ratioText, num("%.2f", func(t *TrackerResult) float64 { return t.AnswerP99MS }))
	row("answer relay max (ms)", nil, num("%.2f", func(t *TrackerResult) float64 { return t.AnswerMaxMS }))
	row("announce response p50 (ms)", nil, num("%.2f", func(t *TrackerResult) float64 { return t.AckP50MS }))
	row("announce response p99 (ms)", nil, num("%.2f", func(t *TrackerResult) float64 { return t.AckP99MS }))
	row("offer-to-answer round trip p50 (ms)", nil, num("%.2f", func(t *TrackerResult) float64 { return t.SignalP50MS }))
	row("offer-to-answer round trip p99 (ms)", nil, num("%.2f", func(t *TrackerResult) float64 { return t.SignalP99MS }))
	row("tracker CPU in load (s)", nil, num("%.2f", func(t *TrackerResult) float64 { return t.LoadCPUSeconds }))
	row("tracker kernel CPU in load (s)", nil, num("%.2f", func(t *TrackerResult) float64 { return phase(t, "load").TrackerSysSeconds }))
	row("tracker cores in load", nil, num("%.2f", func(t *TrackerResult) float64 { return t.LoadTrackerCores }))
	row("CPU s per 1k relayed offers", ratioText, num("%.4f", func(t *TrackerResult) float64 { return t.CPUSecondsPer1kOffers }))
	row("generator cores in load", nil, num("%.2f", func(t *TrackerResult) float64 {
		p := phase(t, "load")
		return ratio(p.WorkersCPUSeconds, p.WallSeconds)
	}))
	row("machine busy cores when idle", nil, num("%.2f", func(t *TrackerResult) float64 { return phase(t, "idle").MachineBusyCores }))
	row("machine busy cores in load", nil, num("%.2f", func(t *TrackerResult) float64 { return phase(t, "load").MachineBusyCores }))
	row("est. announces/s per core", nil, num("%.0f", func(t *TrackerResult) float64 { return t.AnnouncesPerCore }))
	row(fmt.Sprintf("est. idle peers in %g GiB", o.MemGiB), nil, num("%.0f", func(t *TrackerResult) float64 { return t.PeersInMem }))
	_ = tw.Flush()

	for _, t := range r.Trackers {
		var all Stats
		for _, p := range t.Phases {
			all.Merge(p.Stats)
		}
		var notes []string
		add := func(n int64, what string) {
			if n > 0 {
				notes = append(notes, fmt.Sprintf("%d %s", n, what))
			}
		}
		add(all.Disconnects, "disconnects")
		add(all.WriteErrors, "write errors")
		add(all.BadMessages, "bad messages")
		add(all.UnsolicitedAcks, "unsolicited announce responses")
		add(all.AnswersUnmatched, "answers with an unknown offer_id")
		add(all.LateAnswers, "answers later than 50 s (a browser ignores them)")
		add(all.SelfOffers, "offers relayed back to their sender")
		add(all.WrongInfoHash, "messages for another swarm")
		add(all.AnnouncesSkipped, "announces skipped (generator overloaded)")
		add(all.AnnouncesDead, "announces skipped (no peer connected)")
		if len(notes) > 0 || len(all.Errors) > 0 || len(all.Failures) > 0 || len(all.Warnings) > 0 {
			fmt.Fprintf(w, "\n%s:", trackerTitle(t.Name))
			if len(notes) > 0 {
				fmt.Fprintf(w, " %s", strings.Join(notes, ", "))
			}
			fmt.Fprintln(w)
			if len(all.Errors) > 0 {
				fmt.Fprintf(w, "  errors: %s\n", topTexts(all.Errors, 5))
			}
			if len(all.Failures) > 0 {
				fmt.Fprintf(w, "  failure replies: %s\n", topTexts(all.Failures, 5))
			}
			if len(all.Warnings) > 0 {
				fmt.Fprintf(w, "  warning replies: %s\n", topTexts(all.Warnings, 5))
			}
		}
	}

	fmt.Fprintf(w, "\nTargets (ours):\n")
	for _, t := range r.Targets {
		fmt.Fprintf(w, "  %-4s  %s: %s\n", t.Status, t.Name, t.Detail)
	}
	if ours := r.tracker("ours"); loaded(ours) {
		fmt.Fprintf(w, "\nEstimate for ours: %.0f idle peers in %g GiB at %.2f KiB each; %.0f announces/s (%.0f relayed offers/s) per core at %.4f CPU s per 1k offers.\n",
			ours.PeersInMem, o.MemGiB, ours.RSSPerIdlePeerKiB, ours.AnnouncesPerCore,
			ratio(1000, ours.CPUSecondsPer1kOffers), ours.CPUSecondsPer1kOffers)
	}
	if busy := maxBusy(r, "load"); busy > 0 {
		fmt.Fprintf(w, "Note: the tracker, the generator and everything else share %d cores; the machine averaged up to %.2f busy cores in the load phases\n"+
			"and up to %.2f in the idle phases (that is other processes' load). Latency is only meaningful with cores to spare.\n",
			r.Machine.Cores, busy, maxBusy(r, "idle"))
	}
}

// maxBusy returns the highest machine load over the phases called name.
func maxBusy(r *Results, name string) float64 {
	b := 0.0
	for _, t := range r.Trackers {
		for _, p := range t.Phases {
			if p.Name == name {
				b = max(b, p.MachineBusyCores)
			}
		}
	}
	return b
}

// trackerTitle is the column title of a tracker.
func trackerTitle(name string) string {
	if name == "btt" {
		return "bittorrent-tracker"
	}
	return name
}
