package cluster

import "strings"

// randLen is the length of a call id's random part (sip: 80 bits in
// base32).
const randLen = 16

// CallNode is the node a call id names: "c-NODE-XXXXXXXXXXXXXXXX" is
// NODE's; an id without a node ("c-XXXXXXXXXXXXXXXX", a gateway alone)
// or not a call id at all names none ("").
func CallNode(id string) string {
	if !strings.HasPrefix(id, "c-") || len(id) < 2+1+1+randLen || id[len(id)-randLen-1] != '-' {
		return ""
	}
	node := id[2 : len(id)-randLen-1]
	if !ValidNode(node) {
		return ""
	}
	return node
}

// CallNode is the package's CallNode, for api.Cluster.
func (p *Peers) CallNode(id string) string { return CallNode(id) }
