package main

import "github.com/postfach/postfach/agent"

// PLACEHOLDER: the lead plugs imapd and pop3d in at merge, replacing the
// value below with
//
//	var endpoints = agent.Endpoints{
//		IMAP: func(o agent.EndpointOptions) (agent.Endpoint, error) {
//			s, err := imapd.New(imapd.Options{Store: o.Store, Accounts: o.Accounts,
//				Auth: o.Auth, TLS: o.TLS, Logger: o.Logger})
//			if err != nil {
//				return nil, err // not a nil *imapd.Server in the interface
//			}
//			return s, nil
//		},
//		POP3: func(o agent.EndpointOptions) (agent.Endpoint, error) {
//			s, err := pop3d.New(pop3d.Options{Store: o.Store, Accounts: o.Accounts,
//				Folder: o.Folder, Auth: o.Auth, TLS: o.TLS, Logger: o.Logger})
//			if err != nil {
//				return nil, err
//			}
//			return s, nil
//		},
//	}
//
// Until then an address set in [serve] is logged as not built in.

// endpoints are the local endpoints `postfach run` serves where [serve]
// sets their address.
var endpoints = agent.Endpoints{}
