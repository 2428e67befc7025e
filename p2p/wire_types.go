package p2p

import (
	"fmt"
	"math/bits"
	"slices"
)

// MaxSafeInteger is the largest magnitude an Int may carry: the client turns
// every value into a JavaScript Number, which is exact only up to 2^53-1.
const MaxSafeInteger = 1<<53 - 1

// Value type nibbles (spec §3.3).
const (
	itemInt             = 0
	itemSimilarIntArray = 1
	itemString          = 2
)

// Limits of a SimilarIntArray that the client can parse (spec §3.3): both
// the group count and each group's element count are single bytes, and a
// value of 0 does not mean 256.
const (
	maxArrayGroups     = 255
	maxIdsPerGroup     = 255
	similarIntArrayHdr = itemSimilarIntArray << 4
)

// appendInt appends v as an Int value: [0x0L][L bytes], sign-magnitude,
// big-endian, using the minimal L that leaves room for the sign bit.
func appendInt(dst []byte, v int64) ([]byte, error) {
	if v > MaxSafeInteger || v < -MaxSafeInteger {
		return dst, fmt.Errorf("int %d: %w", v, ErrOutOfRange)
	}
	neg := v < 0
	mag := uint64(v)
	if neg {
		mag = uint64(-v)
	}
	l := 1
	if mag != 0 {
		l = (bits.Len64(mag) + 1 + 7) / 8
	}
	dst = append(dst, byte(itemInt<<4|l))
	for i := l - 1; i >= 0; i-- {
		b := byte(mag >> (8 * uint(i)))
		if neg && i == l-1 {
			b |= 0x80
		}
		dst = append(dst, b)
	}
	return dst, nil
}

// readInt decodes an Int value at the start of b and returns it with the
// number of bytes consumed. Non-minimal encodings are accepted, as the client
// accepts them; L=0, truncation and magnitudes above MaxSafeInteger are
// errors.
func readInt(b []byte) (int64, int, error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("int: truncated: %w", ErrMalformed)
	}
	if b[0]>>4 != itemInt {
		return 0, 0, fmt.Errorf("int: type nibble %d: %w", b[0]>>4, ErrMalformed)
	}
	l := int(b[0] & 0x0f)
	if l == 0 {
		return 0, 0, fmt.Errorf("int: zero length: %w", ErrMalformed)
	}
	if len(b) < 1+l {
		return 0, 0, fmt.Errorf("int: length %d but %d bytes left: %w", l, len(b)-1, ErrMalformed)
	}
	mag := uint64(b[1] & 0x7f)
	for _, c := range b[2 : 1+l] {
		// mag <= MaxSafeInteger < 2^53 here, so the shift cannot overflow.
		mag = mag<<8 | uint64(c)
		if mag > MaxSafeInteger {
			return 0, 0, fmt.Errorf("int: %w", ErrOutOfRange)
		}
	}
	v := int64(mag)
	if b[1]&0x80 != 0 {
		v = -v
	}
	return v, 1 + l, nil
}

// arrayGroup is one 256-aligned block of a SimilarIntArray being encoded.
type arrayGroup struct {
	hi          int64
	count       int
	first, last int
}

// blockOf returns the 256-aligned block a value belongs to, computed as the
// client does: n - (n & 0xff), with & acting on the two's complement.
func blockOf(v int64) int64 { return v - (v & 0xff) }

// appendSimilarIntArray appends values as a SimilarIntArray. Values are
// grouped by block in order of first appearance and duplicates are kept, as
// in the client. It returns an error wrapping ErrUnencodable if a block holds
// more than 255 values or there are more than 255 blocks, because the client
// would silently drop such an announcement, and ErrOutOfRange if a value is
// not a safe integer.
func appendSimilarIntArray(dst []byte, values []int64) ([]byte, error) {
	var groups [maxArrayGroups]arrayGroup
	n := 0
	cur := -1
	for i, v := range values {
		if v > MaxSafeInteger || v < -MaxSafeInteger {
			return dst, fmt.Errorf("array element %d: int %d: %w", i, v, ErrOutOfRange)
		}
		hi := blockOf(v)
		if cur < 0 || groups[cur].hi != hi {
			cur = -1
			for g := range n {
				if groups[g].hi == hi {
					cur = g
					break
				}
			}
			if cur < 0 {
				if n == maxArrayGroups {
					return dst, fmt.Errorf("array has more than %d distinct 256-id blocks: %w", maxArrayGroups, ErrUnencodable)
				}
				groups[n] = arrayGroup{hi: hi, first: i}
				cur = n
				n++
			}
		}
		g := &groups[cur]
		g.count++
		g.last = i
		if g.count > maxIdsPerGroup {
			return dst, fmt.Errorf("array block %d holds more than %d ids: %w", hi, maxIdsPerGroup, ErrUnencodable)
		}
	}
	dst = append(dst, similarIntArrayHdr, byte(n))
	for _, g := range groups[:n] {
		// hi+count is within range: hi+255 <= MaxSafeInteger for any
		// safe element, and hi+1 >= -MaxSafeInteger.
		dst, _ = appendInt(dst, g.hi+int64(g.count))
		span := values[g.first : g.last+1]
		if len(span) == g.count {
			for _, v := range span {
				dst = append(dst, byte(v))
			}
			continue
		}
		for _, v := range span {
			if blockOf(v) == g.hi {
				dst = append(dst, byte(v))
			}
		}
	}
	return dst, nil
}

// scanSimilarIntArray validates a SimilarIntArray at the start of b and
// returns its element count and encoded length without allocating.
func scanSimilarIntArray(b []byte) (count, n int, err error) {
	if len(b) < 2 {
		return 0, 0, fmt.Errorf("similar int array: truncated header: %w", ErrMalformed)
	}
	if b[0]>>4 != itemSimilarIntArray {
		return 0, 0, fmt.Errorf("similar int array: type nibble %d: %w", b[0]>>4, ErrMalformed)
	}
	groups := int(b[1])
	off := 2
	for g := range groups {
		v, k, err := readInt(b[off:])
		if err != nil {
			return 0, 0, fmt.Errorf("similar int array: group %d header: %w", g, err)
		}
		off += k
		c := int(v & 0xff)
		hi := v - int64(c)
		if c > len(b)-off {
			return 0, 0, fmt.Errorf("similar int array: group %d has %d elements but %d bytes left: %w", g, c, len(b)-off, ErrMalformed)
		}
		if hi < -MaxSafeInteger || hi+0xff > MaxSafeInteger {
			// Only blocks at the edge of the safe range need a
			// per-element check.
			for _, lo := range b[off : off+c] {
				if e := hi + int64(lo); e > MaxSafeInteger || e < -MaxSafeInteger {
					return 0, 0, fmt.Errorf("similar int array: group %d element: %w", g, ErrOutOfRange)
				}
			}
		}
		off += c
		count += c
	}
	return count, off, nil
}

// readSimilarIntArray appends the elements of a SimilarIntArray at the
// start of b to dst. b should have been validated by scanSimilarIntArray,
// which bounds the number of elements by len(b); bounds are still checked so
// that unvalidated input yields an error rather than a panic.
func readSimilarIntArray(dst []int64, b []byte) ([]int64, error) {
	if len(b) < 2 {
		return dst, fmt.Errorf("similar int array: truncated header: %w", ErrMalformed)
	}
	groups := int(b[1])
	off := 2
	for g := range groups {
		v, k, err := readInt(b[off:])
		if err != nil {
			return dst, fmt.Errorf("similar int array: group %d header: %w", g, err)
		}
		off += k
		c := int(v & 0xff)
		if c > len(b)-off {
			return dst, fmt.Errorf("similar int array: group %d truncated: %w", g, ErrMalformed)
		}
		hi := v - int64(c)
		n := len(dst)
		dst = slices.Grow(dst, c)[:n+c]
		for i, lo := range b[off : off+c] {
			dst[n+i] = hi + int64(lo)
		}
		off += c
	}
	return dst, nil
}

// skipString validates a String value at the start of b and returns its
// encoded length. No command currently uses strings, so their content is
// never needed.
func skipString(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, fmt.Errorf("string: truncated header: %w", ErrMalformed)
	}
	if b[0]>>4 != itemString {
		return 0, fmt.Errorf("string: type nibble %d: %w", b[0]>>4, ErrMalformed)
	}
	l := int(b[0]&0x0f)<<8 | int(b[1])
	if len(b)-2 < l {
		return 0, fmt.Errorf("string: length %d but %d bytes left: %w", l, len(b)-2, ErrMalformed)
	}
	return 2 + l, nil
}
