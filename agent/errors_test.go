package agent

import (
	"errors"
	"testing"
)

// TestAccountErrors: every line of an account's joined folder errors names
// the account.
func TestAccountErrors(t *testing.T) {
	err := errors.Join(accountErrors("work", errors.Join(errors.New(`folder "INBOX": x`), errors.New(`folder "Archive": y`)))...)
	want := "work: folder \"INBOX\": x\nwork: folder \"Archive\": y"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if got := accountErrors("work", errors.New("LIST: z"))[0].Error(); got != "work: LIST: z" {
		t.Errorf("got %q", got)
	}
}
