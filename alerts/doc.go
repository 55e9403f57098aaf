// Package alerts turns rule candidates into alerts people can act on: the
// lifecycle (pending, firing, resolved, with for and keep_firing_for),
// acknowledgements, silences, inhibition, grouping and routing, and
// reliable delivery through a persisted outbox to the notifiers in its
// subpackages (webhook, DingTalk, WeCom, Feishu, e-mail, Alertmanager).
//
// Several instances share one store. Acks, silences and their expiry are
// written there by whichever instance receives them (Manager.Ack,
// AddSilence, ExpireSilence) and read by the leader every tick
// (Manager.Observe). The leader opens a leadership term (Store.BeginTerm)
// stored with every alert state and outbox version; a delivery claims its
// notification and checks the term before sending (Deliverer.Fence), so a
// member that still believes it leads after a rebalance sends nothing.
package alerts
