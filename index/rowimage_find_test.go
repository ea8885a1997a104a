package index

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRowImageFind: Find answers as a plain binary search does, for
// hashes spread evenly (FNV of real names), bunched at one end, all
// equal but one, and for images of 0 to 3 entries; for every entry's hash
// and for hashes between, below and above them.
func TestRowImageFind(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	images := map[string][]uint64{"empty": nil, "one": {42}, "two": {0, math.MaxUint64}, "three": {1, 2, 3}}
	var even, bunched, flat []uint64
	for i := range 5000 {
		even = append(even, FileHash(fmt.Sprintf("%d.M%dP1.host", 1700000000+i, i), "cur", fmt.Sprintf("k%d:2,S", i)))
		bunched = append(bunched, rnd.Uint64N(1<<20))
		flat = append(flat, 7)
	}
	flat[len(flat)-1] = math.MaxUint64 - 1
	images["even"], images["bunched"], images["flat"] = even, bunched, flat
	for name, hashes := range images {
		slices.Sort(hashes)
		hashes = slices.Compact(hashes)
		im := &RowImage{}
		for _, h := range hashes {
			im.ents = append(im.ents, imageEnt{hash: h})
		}
		var probes []uint64
		for _, h := range hashes {
			probes = append(probes, h, h-1, h+1)
		}
		probes = append(probes, 0, math.MaxUint64, rnd.Uint64(), rnd.Uint64())
		for _, h := range probes {
			wantI, wantOK := slices.BinarySearch(hashes, h)
			if i, ok := im.Find(h); i != wantI || ok != wantOK {
				t.Fatalf("%s: Find(%d) = %d, %v; want %d, %v", name, h, i, ok, wantI, wantOK)
			}
		}
	}
}

func BenchmarkRowImageFind(b *testing.B) {
	im := &RowImage{}
	var names []uint64
	for i := range 40000 {
		h := FileHash(fmt.Sprintf("%d.M%dP1.host", 1700000000+i, i), "cur", fmt.Sprintf("k%d:2,S", i))
		names = append(names, h)
		im.ents = append(im.ents, imageEnt{hash: h})
	}
	slices.SortFunc(im.ents, func(a, b imageEnt) int { return cmp.Compare(a.hash, b.hash) })
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := im.Find(names[i%len(names)]); !ok {
			b.Fatal("not found")
		}
	}
}
