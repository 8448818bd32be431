// Package cluster tests ToneVault as a cluster with real components, all
// on loopback and all the test's own processes: Kamailio (Debian's
// kamailio, configs/kamailio/kamailio.cfg) in front of three `tonevault
// serve` nodes, PostgreSQL (test/pgserver) as their shared store, a
// 3-node Vault HA cluster (test/vaultserver), psp-sim, a SIPp agent and
// SIPp and tonevault callers. See cluster_test.go for what it proves.
package cluster
