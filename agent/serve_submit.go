package agent

import (
	"github.com/postfach/postfach/configs"
)

// The local submission endpoint ([serve] submission, agent/submit) runs
// as the IMAP and POP3 endpoints do (serve_run.go: one endpointService,
// the same login checker, certificate and loopback rules, restarted by a
// reload that changes [serve] or the accounts): what it adds is which
// accounts send mail and from which addresses (Senders), and the nudge of
// an account's sender once a message is queued (Nudge, the outbox's). It
// is not started when no account has [accounts.smtp].

// SenderAccount is an account the submission endpoint queues mail for
// (submit.Account).
type SenderAccount struct {
	Name      string
	Addresses []string // envelope senders that choose this account
}

// senderAccounts returns cfg's accounts with [accounts.smtp], in config
// order.
func senderAccounts(cfg *configs.Config) []SenderAccount {
	var out []SenderAccount
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		if a.SMTP != nil {
			out = append(out, SenderAccount{Name: a.Name, Addresses: accountAddresses(a)})
		}
	}
	return out
}

// senderKey is what the submission endpoint uses of an account, for
// accountKeys: nothing when it has no [accounts.smtp].
func senderKey(a *configs.Account) []string {
	if a.SMTP == nil {
		return nil
	}
	return append([]string{"smtp"}, accountAddresses(a)...)
}
