package dns

import (
	"strings"
)

// hoist marks each name whose address records it made with a TXT record
// beside it, as external-dns does: "_hoist.NAME" (for *.X,
// "_hoist-wildcard.X"), holding "heritage=hoist,hoist/owner=OWNER". The
// marker sits at a name of its own because a CNAME may share its name
// with nothing else, and so that TXT records of the name itself (SPF,
// site verification) are never touched. A name with address records
// and no marker, or another owner's, is not hoist's to change.

const (
	markerPrefix         = "_hoist."
	markerWildcardPrefix = "_hoist-wildcard."
	heritage             = "heritage=hoist,"
	ownerKey             = "hoist/owner="
)

// markerName is the name of the ownership record for name.
func markerName(name string) string {
	name = normName(name)
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		return markerWildcardPrefix + rest
	}
	return markerPrefix + name
}

// markedName is the name an ownership record at marker stands for, or
// "" if marker is not one.
func markedName(marker string) string {
	marker = normName(marker)
	if rest, ok := strings.CutPrefix(marker, markerWildcardPrefix); ok {
		return "*." + rest
	}
	if rest, ok := strings.CutPrefix(marker, markerPrefix); ok {
		return rest
	}
	return ""
}

// markerValue is the ownership record's text for owner.
func markerValue(owner string) string { return heritage + ownerKey + owner }

// markerOwner is the owner an ownership record's text names, and
// whether the text is one of hoist's at all.
func markerOwner(text string) (string, bool) {
	text = strings.Trim(strings.TrimSpace(text), `"`)
	rest, ok := strings.CutPrefix(text, heritage)
	if !ok {
		return "", false
	}
	for part := range strings.SplitSeq(rest, ",") {
		if v, ok := strings.CutPrefix(part, ownerKey); ok {
			return v, true
		}
	}
	return "", true
}
