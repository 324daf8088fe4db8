package archive

import (
	"encoding/binary"
	"hash/fnv"
	"math/bits"
	"strings"
)

// The lookup filter of a cold file is a bloom filter over the distinct values of its lookup
// columns (LookupColumns), one filter for all of them, so the catalogue can tell which files
// may hold a key without any file being opened. A value is hashed with its column's name
// (FNV-1a 128), and the filter's k bits are the double hashes h1 + i·h2 (i < lookupHashes)
// modulo the filter's size in bits, a power of two. The catalogue tests the bits itself
// (PostgreSQL's get_bit numbers the bits of a byte from the least significant), so the
// reader sends LookupProbe's positions, reduced modulo 2^62 to fit a bigint; modulo a power
// of two below that they select the same bits.

// LookupColumns are the columns a cold file's lookup filter holds the values of.
var LookupColumns = []string{"correlation_id", "actor_id", "event_type"}

const (
	lookupHashes     = 7  // bits per value: the optimum for 10 bits per value
	lookupBitsPerKey = 10 // about 1% false positives
	positionMask     = 1<<62 - 1
)

// LookupProbe returns the bit positions a lookup filter has set when it holds value in
// column: a filter holds it (or a false positive) when every position modulo its size in bits
// is set.
func LookupProbe(column, value string) []int64 {
	h1, h2 := lookupHash(column, value)
	out := make([]int64, lookupHashes)
	for i := range out {
		out[i] = int64((h1 + uint64(i)*h2) & positionMask)
	}
	return out
}

func lookupHash(column, value string) (uint64, uint64) {
	h := fnv.New128a()
	h.Write([]byte(column))
	h.Write([]byte{0})
	h.Write([]byte(value))
	var sum [16]byte
	h.Sum(sum[:0])
	// An odd step visits distinct bits modulo a power of two.
	return binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:]) | 1
}

// lookupFilter builds the filter of a file from its distinct values per lookup column.
func lookupFilter(values map[string]map[string]struct{}) []byte {
	n := 0
	for _, vs := range values {
		n += len(vs)
	}
	size := 1 << max(6, bits.Len(uint(max(n, 1)*lookupBitsPerKey-1))) // bits, a power of two ≥ 64
	f := make([]byte, size/8)
	for col, vs := range values {
		for v := range vs {
			for _, p := range LookupProbe(col, v) {
				b := uint64(p) & uint64(size-1)
				f[b/8] |= 1 << (b % 8)
			}
		}
	}
	return f
}

// LookupFilterHas reports whether a lookup filter holds value in column (or a false positive).
// The catalogue asks the same of every file at once; this is its definition.
func LookupFilterHas(filter []byte, column, value string) bool {
	size := uint64(len(filter)) * 8
	for _, p := range LookupProbe(column, value) {
		b := uint64(p) % size
		if filter[b/8]&(1<<(b%8)) == 0 {
			return false
		}
	}
	return true
}

// lookupValues collects the distinct values of the lookup columns of rows.
type lookupValues map[string]map[string]struct{}

func (lv lookupValues) add(r *ColdRow) {
	for i, v := range []string{r.CorrelationID, r.ActorID, r.EventType} {
		col := LookupColumns[i]
		if lv[col] == nil {
			lv[col] = map[string]struct{}{}
		}
		if _, ok := lv[col][v]; !ok {
			lv[col][strings.Clone(v)] = struct{}{} // a row read from a file is valid only until the next
		}
	}
}

// LookupFilterOf computes the lookup filter of a cold file from its rows (for a file written
// before lookup filters existed): add every row, then call the returned function.
func LookupFilterOf() (add func(*ColdRow), filter func() []byte) {
	lv := lookupValues{}
	return lv.add, func() []byte { return lookupFilter(lv) }
}
