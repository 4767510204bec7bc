// Package labtest helps lab tests: it skips them where a lab cannot run
// (Need), and looks at lab hosts from outside: from this machine, from a
// neighbour's network namespace, or from a stranger on the lab's bridge,
// with listeners that stand in for a host's services. All but Need is
// Linux only, as the lab is.
package labtest
