package main

import (
	"io"
	"strings"

	"github.com/rivo/uniseg"
)

// columns writes rows of cells aligned in columns by their width on a
// terminal (uniseg: a CJK character or an emoji takes two cells, a
// combining mark none), where text/tabwriter counts runes and misaligns
// every row holding a double-width character. The last cell of a row is
// not padded; columns are two spaces apart.
type columns struct {
	rows [][]string
}

func (c *columns) add(cells ...string) { c.rows = append(c.rows, cells) }

func (c *columns) writeTo(w io.Writer) error {
	var widths []int
	for _, r := range c.rows {
		for i, cell := range r[:max(len(r)-1, 0)] {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], uniseg.StringWidth(cell))
		}
	}
	var b strings.Builder
	for _, r := range c.rows {
		b.Reset()
		for i, cell := range r {
			b.WriteString(cell)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-uniseg.StringWidth(cell)+2))
			}
		}
		b.WriteByte('\n')
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}
