// Package labtest helps lab tests look at lab hosts from outside: from
// this machine, from a neighbour's network namespace, or from a stranger
// on the lab's bridge, with listeners that stand in for a host's
// services. Linux only, as the lab is.
package labtest
