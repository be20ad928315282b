package tokenizer

import "math"

// Byte-pair merging as tiktoken does it: a pre-token that is itself a token
// is that token; otherwise start from its single bytes and repeatedly merge
// the adjacent pair whose concatenation has the lowest rank (the leftmost
// such pair on a tie) until no adjacent pair is a token.

const noRank = math.MaxInt32

// heapMergeMin is the piece length from which the heap-ordered merge replaces
// the quadratic scan (the scan is faster for the short pieces of real text).
const heapMergeMin = 128

// appendPiece appends the ids of one pre-token to dst.
func (v *vocab) appendPiece(dst []int, piece string) []int {
	if len(piece) == 1 {
		return append(dst, int(v.byteID[piece[0]]))
	}
	if id, ok := v.ranks[piece]; ok {
		return append(dst, int(id))
	}
	if len(piece) >= heapMergeMin {
		return v.mergeHeap(dst, piece)
	}
	return v.mergeScan(dst, piece)
}

// rankOf returns the rank of piece[a:b], or noRank when it is not a token.
func (v *vocab) rankOf(piece string, a, b int) int32 {
	if id, ok := v.ranks[piece[a:b]]; ok {
		return id
	}
	return noRank
}

// mergeScan merges by scanning every boundary for the lowest pair rank:
// O(n²) in the piece length, with no allocation beyond two small slices.
func (v *vocab) mergeScan(dst []int, piece string) []int {
	var bstore [heapMergeMin + 1]int
	var rstore [heapMergeMin]int32
	bounds := bstore[:0] // token k is piece[bounds[k]:bounds[k+1]]
	for i := 0; i <= len(piece); i++ {
		bounds = append(bounds, i)
	}
	rank := rstore[:0] // rank[k]: rank of tokens k and k+1 merged
	for k := 0; k+2 < len(bounds); k++ {
		rank = append(rank, v.rankOf(piece, bounds[k], bounds[k+2]))
	}
	for len(rank) > 0 {
		best := 0
		for k, r := range rank {
			if r < rank[best] {
				best = k
			}
		}
		if rank[best] == noRank {
			break
		}
		// Tokens best and best+1 become one: drop boundary best+1.
		bounds = append(bounds[:best+1], bounds[best+2:]...)
		rank = append(rank[:best], rank[best+1:]...)
		if best < len(rank) {
			rank[best] = v.rankOf(piece, bounds[best], bounds[best+2])
		}
		if best > 0 {
			rank[best-1] = v.rankOf(piece, bounds[best-1], bounds[best+1])
		}
	}
	for k := 0; k+1 < len(bounds); k++ {
		dst = append(dst, int(v.ranks[piece[bounds[k]:bounds[k+1]]]))
	}
	return dst
}

// mergeHeap gives the same result as mergeScan in O(n log n): the live
// tokens form a linked list and candidate pairs wait in a min-heap ordered by
// (rank, position); an entry whose pair has since changed is skipped.
func (v *vocab) mergeHeap(dst []int, piece string) []int {
	n := len(piece)
	next := make([]int32, n) // start of the token after the one starting at i (n at the end)
	prev := make([]int32, n) // start of the token before (-1 at the beginning)
	pair := make([]int32, n) // rank of the pair starting at i, noRank if none
	alive := make([]bool, n)
	h := make(pairHeap, 0, n)
	for i := 0; i < n; i++ {
		next[i], prev[i], alive[i] = int32(i+1), int32(i-1), true
		pair[i] = noRank
		if i+2 <= n {
			pair[i] = v.rankOf(piece, i, i+2)
		}
		if pair[i] != noRank {
			h = append(h, pairEntry{pair[i], int32(i)})
		}
	}
	h.init()
	// pairRank is the rank of the token at i merged with its successor.
	pairRank := func(i int32) int32 {
		j := next[i]
		if j >= int32(n) {
			return noRank
		}
		return v.rankOf(piece, int(i), int(next[j]))
	}
	for len(h) > 0 {
		e := h.pop()
		i := e.pos
		if !alive[i] || pair[i] != e.rank || next[i] >= int32(n) {
			continue // stale entry
		}
		j := next[i]
		alive[j] = false
		next[i] = next[j]
		if next[i] < int32(n) {
			prev[next[i]] = i
		}
		pair[i] = pairRank(i)
		if pair[i] != noRank {
			h.push(pairEntry{pair[i], i})
		}
		if p := prev[i]; p >= 0 {
			pair[p] = pairRank(p)
			if pair[p] != noRank {
				h.push(pairEntry{pair[p], p})
			}
		}
	}
	for i := int32(0); i < int32(n); i = next[i] {
		dst = append(dst, int(v.ranks[piece[i:next[i]]]))
	}
	return dst
}

type pairEntry struct{ rank, pos int32 }

func (a pairEntry) less(b pairEntry) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// pairHeap is a binary min-heap of pairEntry.
type pairHeap []pairEntry

func (h pairHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *pairHeap) push(e pairEntry) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *pairHeap) pop() pairEntry {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	h.down(0)
	return top
}

func (h pairHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
