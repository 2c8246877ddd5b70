package ledger

import "golang.org/x/mod/sumdb/tlog"

// compact is a tree of size leaves held as the roots of its complete
// subtrees, largest first (a compact range from 0): all that appending
// leaves and computing the root need, a hash a level.
type compact struct {
	size  int64
	roots []tlog.Hash
}

// add appends the leaf whose hash is h.
func (c *compact) add(h tlog.Hash) {
	c.roots = append(c.roots, h)
	for s := c.size; s&1 == 1; s >>= 1 {
		n := len(c.roots)
		c.roots[n-2] = tlog.NodeHash(c.roots[n-2], c.roots[n-1])
		c.roots = c.roots[:n-1]
	}
	c.size++
}

// root is the RFC 6962 root of the tree (tlog.TreeHash's): the subtrees
// folded from the right. The empty tree's is the zero hash, as tlog's.
func (c *compact) root() tlog.Hash {
	if len(c.roots) == 0 {
		return tlog.Hash{}
	}
	h := c.roots[len(c.roots)-1]
	for i := len(c.roots) - 2; i >= 0; i-- {
		h = tlog.NodeHash(c.roots[i], h)
	}
	return h
}

// clone is a copy that adding to leaves c as it is.
func (c *compact) clone() compact {
	return compact{size: c.size, roots: append([]tlog.Hash(nil), c.roots...)}
}
