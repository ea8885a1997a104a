package agent

import (
	"time"

	"github.com/postfach/postfach/configs"
)

// smtpSettings returns save_sent, sent_folder, queue_expiry and
// queue_warn of the account's [accounts.smtp] (which must be set).
func smtpSettings(acct *configs.Account) (saveSent bool, sentFolder string, expiry, warn time.Duration) {
	s := acct.SMTP
	return s.SaveSent, s.SentFolder, s.QueueExpiry, s.QueueWarn
}

// accountAddresses returns the account's sender addresses (`addresses`;
// by default the user name when it holds an "@").
func accountAddresses(acct *configs.Account) []string { return acct.Addresses }
