package p2p

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkAnnouncement verifies BuildAnnouncement's contract for one list:
// kept and omitted are sorted, disjoint, and together the de-duplicated
// input; kept is encodable.
func checkAnnouncement(t *testing.T, in, kept, omitted []int64) {
	t.Helper()
	set := map[int64]bool{}
	for _, v := range in {
		set[v] = true
	}
	if !slices.IsSorted(kept) || !slices.IsSorted(omitted) {
		t.Fatalf("kept or omitted not sorted")
	}
	seen := map[int64]bool{}
	for _, v := range slices.Concat(kept, omitted) {
		if seen[v] {
			t.Fatalf("id %d appears twice in kept+omitted", v)
		}
		seen[v] = true
	}
	if !maps.Equal(seen, set) {
		t.Fatalf("kept+omitted (%d ids) differ from the input set (%d ids)", len(seen), len(set))
	}
	if _, err := appendSimilarIntArray(nil, kept); err != nil {
		t.Fatalf("kept ids are not encodable: %v", err)
	}
}

func TestBuildAnnouncement(t *testing.T) {
	t.Run("dedup and sort", func(t *testing.T) {
		in := []int64{5, 3, 5, 1, 3}
		a, o := BuildAnnouncement(in, []int64{9, 9})
		if !slices.Equal(a.Loaded, []int64{1, 3, 5}) || !slices.Equal(a.HTTPLoading, []int64{9}) || !o.Empty() {
			t.Fatalf("got %v %v, omitted %+v", a.Loaded, a.HTTPLoading, o)
		}
		if !slices.Equal(in, []int64{5, 3, 5, 1, 3}) {
			t.Fatalf("input modified: %v", in)
		}
	})
	t.Run("empty", func(t *testing.T) {
		a, o := BuildAnnouncement(nil, []int64{})
		if a.Loaded != nil || a.HTTPLoading != nil || !o.Empty() {
			t.Fatalf("got %+v, %+v", a, o)
		}
	})
	t.Run("full block loses its lowest id", func(t *testing.T) {
		in := slices.Concat(seqIDs(256, 511), seqIDs(1000, 1010))
		a, o := BuildAnnouncement(in, nil)
		if !slices.Equal(o.Loaded, []int64{256}) || len(a.Loaded) != len(in)-1 {
			t.Fatalf("omitted %v, kept %d", o.Loaded, len(a.Loaded))
		}
		checkAnnouncement(t, in, a.Loaded, o.Loaded)
	})
	t.Run("more than 255 blocks keeps the highest", func(t *testing.T) {
		var in []int64
		for b := range int64(300) {
			in = append(in, b*256+3, b*256+200)
		}
		a, o := BuildAnnouncement(in, in)
		if len(a.Loaded) != 2*255 || a.Loaded[0] != 45*256+3 || len(o.Loaded) != 2*45 || o.Loaded[len(o.Loaded)-1] != 44*256+200 {
			t.Fatalf("kept %d from %d, omitted %d up to %d", len(a.Loaded), a.Loaded[0], len(o.Loaded), o.Loaded[len(o.Loaded)-1])
		}
		checkAnnouncement(t, in, a.Loaded, o.Loaded)
		checkAnnouncement(t, in, a.HTTPLoading, o.HTTPLoading)
		roundTrip(t, a)
	})
	t.Run("maximal announcement", func(t *testing.T) {
		in := seqIDs(0, 300*256-1) // 300 full blocks
		a, o := BuildAnnouncement(in, nil)
		if len(a.Loaded) != 255*255 {
			t.Fatalf("kept %d ids, want %d", len(a.Loaded), 255*255)
		}
		checkAnnouncement(t, in, a.Loaded, o.Loaded)
		roundTrip(t, a)
	})
	t.Run("out of range ids", func(t *testing.T) {
		in := []int64{MaxSafeInteger + 1, 5, -MaxSafeInteger - 1, MaxSafeInteger, -1 << 63}
		a, o := BuildAnnouncement(in, nil)
		if !slices.Equal(a.Loaded, []int64{5, MaxSafeInteger}) ||
			!slices.Equal(o.Loaded, []int64{-1 << 63, -MaxSafeInteger - 1, MaxSafeInteger + 1}) {
			t.Fatalf("kept %v, omitted %v", a.Loaded, o.Loaded)
		}
		checkAnnouncement(t, in, a.Loaded, o.Loaded)
	})
	t.Run("random", func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for range 300 {
			in := make([]int64, r.IntN(3000))
			spread := int64(1 + r.IntN(200_000))
			for i := range in {
				in[i] = r.Int64N(spread) - spread/4
			}
			a, o := BuildAnnouncement(in, nil)
			checkAnnouncement(t, in, a.Loaded, o.Loaded)
		}
	})
}
