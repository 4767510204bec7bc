package proxy

import (
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// Maintenance mode and an app's own error pages. A route in maintenance
// answers every request with a 503 page, its message and Retry-After,
// while the app keeps running behind it (a migration, say); its upstream
// is still health-checked, so it serves again the moment maintenance is
// off. An app's pages replace the proxy's own for the 502, 503 and 504
// it answers for the app.

// Limits of what a route carries.
const (
	// MaxPageBytes bounds an app's error page.
	MaxPageBytes = 64 << 10
	// MaxMessageBytes bounds a maintenance message.
	MaxMessageBytes = 1 << 10
	// DefaultRetryAfter is maintenance's default Retry-After.
	DefaultRetryAfter = 5 * time.Minute
	// MessagePlaceholder in an app's 503 page is replaced by the
	// maintenance message, HTML-escaped.
	MessagePlaceholder = "{{message}}"
)

// PageCodes are the answers an app can give its own page for.
var PageCodes = []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}

// validateMaintenance checks the maintenance mode and fills in its default.
func validateMaintenance(m *hostproto.Maintenance, app string) error {
	if len(m.Message) > MaxMessageBytes || !utf8.ValidString(m.Message) {
		return fmt.Errorf("route %s: the maintenance message must be UTF-8 text of at most %d bytes", app, MaxMessageBytes)
	}
	if m.RetryAfter.Duration < 0 {
		return fmt.Errorf("route %s: negative Retry-After", app)
	}
	if m.RetryAfter.Duration == 0 {
		m.RetryAfter.Duration = DefaultRetryAfter
	}
	return nil
}

// validatePages checks an app's own error pages.
func validatePages(app string, pages map[int]string) error {
	for code, body := range pages {
		if code != http.StatusBadGateway && code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
			return fmt.Errorf("route %s: an app's own page is for 502, 503 or 504, not %d", app, code)
		}
		if len(body) > MaxPageBytes || !utf8.ValidString(body) {
			return fmt.Errorf("route %s: its %d page must be UTF-8 of at most %d bytes", app, code, MaxPageBytes)
		}
	}
	return nil
}

// retryAfter is Retry-After's value: whole seconds, at least one.
func retryAfter(m *hostproto.Maintenance) string {
	return strconv.FormatInt(max(1, int64(m.RetryAfter.Round(time.Second)/time.Second)), 10)
}

// maintenanceBody is the page a route in maintenance answers with: the
// app's 503 page with the message in it, or the proxy's own.
func maintenanceBody(m *hostproto.Maintenance, custom503 string) string {
	msg := html.EscapeString(m.Message)
	if custom503 != "" {
		return strings.ReplaceAll(custom503, MessagePlaceholder, msg)
	}
	if msg == "" {
		msg = "This application is down for maintenance. Try again in a moment."
	}
	return fmt.Sprintf("<!doctype html><title>503 Service Unavailable</title><h1>503 Service Unavailable</h1><p>%s</p>\n", msg)
}

// answerMaintenance answers a request of a route in maintenance.
func answerMaintenance(w http.ResponseWriter, e *entry) {
	w.Header().Set("Retry-After", retryAfter(e.route.Maintenance))
	writePage(w, http.StatusServiceUnavailable, e.maintenance)
}

// page is the app's own page for code, "" for the proxy's.
func (e *entry) page(code int) string { return e.route.Pages[code] }
