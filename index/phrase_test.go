package index

import (
	"testing"
	"time"
)

// TestQueryPhrase: a text term of several words (as the index's tokenizer
// separates them: an address is several) makes the query a phrase one,
// whose matches SearchQuery counts all and does not match twice.
func TestQueryPhrase(t *testing.T) {
	for q, want := range map[string]bool{
		"today":                           false,
		"washa*":                          false,
		"today those":                     false,
		`"looking forward to"`:            true,
		"from:dgarcia@example.net":        true,
		"a OR (b AND \"c d\")":            true,
		"weiß date:2020":                  false,
		`-"not this" today`:               true,
		"subject:Grüße":                   false,
		"subject:\"re: grüße\" flag:seen": true,
	} {
		pq, err := ParseQuery(q, time.UTC)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got := hasPhrase(pq); got != want {
			t.Errorf("%s: hasPhrase %v, want %v", q, got, want)
		}
	}
}
