package main

import (
	"math/bits"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// histSubBits sets the precision of Hist: each power of two is split into
// 2^histSubBits buckets, so a recorded value is off by at most 1/64 (1.6 %).
const histSubBits = 6

// Hist is a log-linear histogram of durations in microseconds that can be
// sent between processes as JSON and merged.
type Hist struct {
	// Counts maps a bucket index (see histBucket) to its count.
	Counts map[int]int64 `json:"counts,omitempty"`
	N      int64         `json:"n"`
	SumUS  int64         `json:"sum_us"`
	MaxUS  int64         `json:"max_us"`
}

// histBucket returns the bucket index of v microseconds.
func histBucket(v int64) int {
	if v < 1<<histSubBits {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	return (shift+1)<<histSubBits + int(v>>shift) - 1<<histSubBits
}

// histValue returns the highest value that falls into bucket b.
func histValue(b int) int64 {
	if b < 1<<histSubBits {
		return int64(b)
	}
	shift := b>>histSubBits - 1
	mant := int64(b&(1<<histSubBits-1)) + 1<<histSubBits
	return (mant+1)<<shift - 1
}

// Record adds one duration.
func (h *Hist) Record(d time.Duration) {
	v := d.Microseconds()
	if v < 0 {
		v = 0
	}
	if h.Counts == nil {
		h.Counts = make(map[int]int64)
	}
	h.Counts[histBucket(v)]++
	h.N++
	h.SumUS += v
	if v > h.MaxUS {
		h.MaxUS = v
	}
}

// Merge adds the values of o to h.
func (h *Hist) Merge(o Hist) {
	if len(o.Counts) > 0 && h.Counts == nil {
		h.Counts = make(map[int]int64)
	}
	for b, c := range o.Counts {
		h.Counts[b] += c
	}
	h.N += o.N
	h.SumUS += o.SumUS
	h.MaxUS = max(h.MaxUS, o.MaxUS)
}

// Quantile returns the q quantile (0 < q <= 1) in milliseconds, or 0 for an
// empty histogram. The result is the upper edge of the bucket holding the
// quantile, capped at the exact maximum.
func (h *Hist) Quantile(q float64) float64 {
	if h.N == 0 {
		return 0
	}
	keys := make([]int, 0, len(h.Counts))
	for b := range h.Counts {
		keys = append(keys, b)
	}
	sort.Ints(keys)
	rank := int64(q*float64(h.N) + 0.5)
	rank = max(rank, 1)
	var seen int64
	for _, b := range keys {
		seen += h.Counts[b]
		if seen >= rank {
			return float64(min(histValue(b), h.MaxUS)) / 1000
		}
	}
	return float64(h.MaxUS) / 1000
}

// MeanMS returns the mean in milliseconds.
func (h *Hist) MeanMS() float64 {
	if h.N == 0 {
		return 0
	}
	return float64(h.SumUS) / float64(h.N) / 1000
}

// Stats are the counters one worker keeps for one phase. The parent merges
// those of all workers.
type Stats struct {
	// DialsOK and DialsFailed count WebSocket connection attempts.
	DialsOK     int64 `json:"dials_ok"`
	DialsFailed int64 `json:"dials_failed"`
	// Connected is the number of open sockets when the stats were taken.
	Connected int64 `json:"connected"`
	// AnnouncesSent counts announces written; OffersSent the offers in them.
	AnnouncesSent int64 `json:"announces_sent"`
	OffersSent    int64 `json:"offers_sent"`
	// AnnouncesSkipped counts scheduled announces not sent because the
	// generator's send queue was full (the generator is overloaded) and
	// AnnouncesDead those not sent because no peer of the worker had a
	// socket left.
	AnnouncesSkipped int64 `json:"announces_skipped"`
	AnnouncesDead    int64 `json:"announces_dead"`
	// Acks counts announce responses (interval/complete, no offer or
	// answer) matching an announce; UnsolicitedAcks those received when no
	// announce of that peer was waiting for one (a response to an answer).
	Acks            int64 `json:"acks"`
	UnsolicitedAcks int64 `json:"unsolicited_acks"`
	// OffersReceived counts relayed offers; AnswersSent the answers to them.
	OffersReceived int64 `json:"offers_received"`
	AnswersSent    int64 `json:"answers_sent"`
	// AnswersReceived counts relayed answers; AnswersUnmatched those whose
	// offer_id is not one the receiving peer made; LateAnswers those that
	// came more than 50 s after the offer, which a browser ignores.
	AnswersReceived  int64 `json:"answers_received"`
	AnswersUnmatched int64 `json:"answers_unmatched"`
	LateAnswers      int64 `json:"late_answers"`
	// SelfOffers counts offers relayed to the peer that made them.
	SelfOffers int64 `json:"self_offers"`
	// WrongInfoHash counts messages naming a swarm the peer is not in.
	WrongInfoHash int64 `json:"wrong_info_hash"`
	// BadMessages counts replies that are not JSON objects of the protocol
	// or carry no usable timestamp.
	BadMessages int64 `json:"bad_messages"`
	// Failures and Warnings count "failure reason" and "warning message"
	// replies by text.
	Failures map[string]int64 `json:"failures,omitempty"`
	Warnings map[string]int64 `json:"warnings,omitempty"`
	// Disconnects counts sockets closed by the tracker or by an error,
	// WriteErrors failed writes; Errors counts dial, read and write errors
	// by text.
	Disconnects int64            `json:"disconnects"`
	WriteErrors int64            `json:"write_errors"`
	Errors      map[string]int64 `json:"errors,omitempty"`
	// BytesSent and BytesReceived count WebSocket message payloads.
	BytesSent     int64 `json:"bytes_sent"`
	BytesReceived int64 `json:"bytes_received"`
	// OfferLatency is from the announce being sent to the relayed offer
	// arriving; AnswerLatency from the answer being sent to it arriving at
	// the offerer; AckLatency from the announce to its response;
	// SignalRTT from the announce to the answer arriving at the offerer
	// (the whole signalling round trip a browser waits for).
	OfferLatency  Hist `json:"offer_latency"`
	AnswerLatency Hist `json:"answer_latency"`
	AckLatency    Hist `json:"ack_latency"`
	SignalRTT     Hist `json:"signal_rtt"`
}

// maxKeys caps the distinct texts kept in a map of Stats; further texts are
// counted under "(other)".
const maxKeys = 16

// addrRE matches IP addresses with ports in error texts, so that errors
// differing only in the address are counted together.
var addrRE = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+(:\d+)?`)

// countText adds one occurrence of text to *m.
func countText(m *map[string]int64, text string) {
	if *m == nil {
		*m = make(map[string]int64)
	}
	text = addrRE.ReplaceAllString(text, "ADDR")
	if len(text) > 120 {
		text = text[:120] + "…"
	}
	if _, ok := (*m)[text]; !ok && len(*m) >= maxKeys {
		text = "(other)"
	}
	(*m)[text]++
}

// mergeText adds the counts of src to *dst.
func mergeText(dst *map[string]int64, src map[string]int64) {
	for k, v := range src {
		if *dst == nil {
			*dst = make(map[string]int64)
		}
		(*dst)[k] += v
	}
}

// Merge adds the counters of o to s.
func (s *Stats) Merge(o *Stats) {
	s.DialsOK += o.DialsOK
	s.DialsFailed += o.DialsFailed
	s.Connected += o.Connected
	s.AnnouncesSent += o.AnnouncesSent
	s.OffersSent += o.OffersSent
	s.AnnouncesSkipped += o.AnnouncesSkipped
	s.AnnouncesDead += o.AnnouncesDead
	s.Acks += o.Acks
	s.UnsolicitedAcks += o.UnsolicitedAcks
	s.OffersReceived += o.OffersReceived
	s.AnswersSent += o.AnswersSent
	s.AnswersReceived += o.AnswersReceived
	s.AnswersUnmatched += o.AnswersUnmatched
	s.LateAnswers += o.LateAnswers
	s.SelfOffers += o.SelfOffers
	s.WrongInfoHash += o.WrongInfoHash
	s.BadMessages += o.BadMessages
	mergeText(&s.Failures, o.Failures)
	mergeText(&s.Warnings, o.Warnings)
	s.Disconnects += o.Disconnects
	s.WriteErrors += o.WriteErrors
	mergeText(&s.Errors, o.Errors)
	s.BytesSent += o.BytesSent
	s.BytesReceived += o.BytesReceived
	s.OfferLatency.Merge(o.OfferLatency)
	s.AnswerLatency.Merge(o.AnswerLatency)
	s.AckLatency.Merge(o.AckLatency)
	s.SignalRTT.Merge(o.SignalRTT)
}

// topTexts formats the most frequent entries of m for a report line.
func topTexts(m map[string]int64, n int) string {
	type kv struct {
		k string
		v int64
	}
	var list []kv
	for k, v := range m {
		list = append(list, kv{k, v})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].v != list[j].v {
			return list[i].v > list[j].v
		}
		return list[i].k < list[j].k
	})
	out := ""
	for i, e := range list {
		if i == n {
			out += "; …"
			break
		}
		if i > 0 {
			out += "; "
		}
		out += strconv.FormatInt(e.v, 10) + "× " + e.k
	}
	return out
}
