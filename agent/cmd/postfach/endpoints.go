package main

import (
	"github.com/postfach/postfach/agent"
	"github.com/postfach/postfach/agent/imapd"
	"github.com/postfach/postfach/agent/pop3d"
	"github.com/postfach/postfach/agent/submit"
)

// endpoints are the local endpoints `postfach run` serves where [serve]
// sets their address. The agent takes them as constructors so that its
// own tests can serve a trivial endpoint.
var endpoints = agent.Endpoints{
	IMAP: func(o agent.EndpointOptions) (agent.Endpoint, error) {
		s, err := imapd.New(imapd.Options{Store: o.Store, Accounts: o.Accounts,
			Auth: o.Auth, TLS: o.TLS, Logger: o.Logger})
		if err != nil {
			return nil, err // not a nil *imapd.Server in the interface
		}
		return s, nil
	},
	POP3: func(o agent.EndpointOptions) (agent.Endpoint, error) {
		s, err := pop3d.New(pop3d.Options{Store: o.Store, Accounts: o.Accounts,
			Folder: o.Folder, Auth: o.Auth, TLS: o.TLS, Logger: o.Logger})
		if err != nil {
			return nil, err
		}
		return s, nil
	},
	Submission: func(o agent.EndpointOptions) (agent.Endpoint, error) {
		accts := make([]submit.Account, len(o.Senders))
		for i, a := range o.Senders {
			accts[i] = submit.Account{Name: a.Name, Addresses: a.Addresses}
		}
		s, err := submit.New(submit.Options{Store: o.Store, Accounts: accts,
			Auth: o.Auth, TLS: o.TLS, Nudge: o.Nudge, Logger: o.Logger})
		if err != nil {
			return nil, err
		}
		return s, nil
	},
}
