package p2p

import (
	"slices"
)

// Omitted lists the segment ids BuildAnnouncement left out of an
// announcement, per field, in ascending order.
type Omitted struct {
	Loaded      []int64
	HTTPLoading []int64
}

// Empty reports whether nothing was left out.
func (o Omitted) Empty() bool {
	return len(o.Loaded) == 0 && len(o.HTTPLoading) == 0
}

// BuildAnnouncement returns a SegmentsAnnouncement that the client is
// guaranteed to parse, together with the ids it had to leave out.
//
// Each list is handled on its own: ids are copied, sorted ascending and
// de-duplicated (the client keeps sets, so order and duplicates carry no
// meaning). Then the limits of the SimilarIntArray encoding (spec §3.3) are
// enforced, because the client silently drops an announcement that breaks
// them:
//
//   - ids whose magnitude exceeds MaxSafeInteger are left out;
//   - a 256-aligned block holding all 256 of its ids loses its lowest id
//     (for VOD that is the segment a viewer usually fetches over HTTP
//     anyway, since it is played first);
//   - if more than 255 blocks remain, only the 255 highest blocks are kept
//     (for live streams these are the newest segments).
//
// The inputs are not modified.
func BuildAnnouncement(loaded, httpLoading []int64) (SegmentsAnnouncement, Omitted) {
	var a SegmentsAnnouncement
	var o Omitted
	a.Loaded, o.Loaded = fitSimilarIntArray(loaded)
	a.HTTPLoading, o.HTTPLoading = fitSimilarIntArray(httpLoading)
	return a, o
}

// fitSimilarIntArray returns the sorted, de-duplicated ids that can be
// encoded and the ids left out.
func fitSimilarIntArray(ids []int64) (kept, omitted []int64) {
	if len(ids) == 0 {
		return nil, nil
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)

	// Out-of-range ids sit at both ends of the sorted slice.
	lo, hi := 0, len(sorted)
	for lo < hi && sorted[lo] < -MaxSafeInteger {
		lo++
	}
	for hi > lo && sorted[hi-1] > MaxSafeInteger {
		hi--
	}
	omitted = append(omitted, sorted[:lo]...)
	tooBig := sorted[hi:]
	sorted = sorted[lo:hi]

	// Find the lowest of the (at most) 255 highest blocks; everything
	// below it is left out.
	start, blocks := len(sorted), 0
	for start > 0 && blocks < maxArrayGroups {
		block := blockOf(sorted[start-1])
		for start > 0 && blockOf(sorted[start-1]) == block {
			start--
		}
		blocks++
	}
	omitted = append(omitted, sorted[:start]...)

	// Compact the kept ids in place (writes never overtake reads),
	// dropping the lowest id of any block that holds all 256 ids. The
	// result stays in ascending order, and so does omitted.
	kept = sorted[:0]
	for i := start; i < len(sorted); {
		block := blockOf(sorted[i])
		j := i + 1
		for j < len(sorted) && blockOf(sorted[j]) == block {
			j++
		}
		run := sorted[i:j]
		if excess := len(run) - maxIdsPerGroup; excess > 0 {
			omitted = append(omitted, run[:excess]...)
			run = run[excess:]
		}
		kept = append(kept, run...)
		i = j
	}
	omitted = append(omitted, tooBig...)
	if len(kept) == 0 {
		kept = nil
	}
	return kept, omitted
}
