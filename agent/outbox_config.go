package agent

import (
	"strings"
	"time"

	"github.com/postfach/postfach/configs"
)

// The keys of [accounts.smtp] and the account's addresses that Part Q
// adds to configs (SMTP.SaveSent, SentFolder, QueueExpiry, QueueWarn;
// Account.Addresses). Until they are merged these give the documented
// defaults.
//
// MERGE (issue 12): once configs has them, the bodies become
//
//	func smtpSettings(acct *configs.Account) (bool, string, time.Duration, time.Duration) {
//		s := acct.SMTP
//		return s.SaveSent, s.SentFolder, s.QueueExpiry, s.QueueWarn
//	}
//	func accountAddresses(acct *configs.Account) []string { return acct.Addresses }

// smtpSettings returns save_sent, sent_folder, queue_expiry and
// queue_warn of the account's [accounts.smtp] (which must be set).
func smtpSettings(acct *configs.Account) (saveSent bool, sentFolder string, expiry, warn time.Duration) {
	return true, "", 0, 0
}

// accountAddresses returns the account's sender addresses (`addresses`;
// by default the user name when it holds an "@").
func accountAddresses(acct *configs.Account) []string {
	if strings.Contains(acct.Username, "@") {
		return []string{acct.Username}
	}
	return nil
}
