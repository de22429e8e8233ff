package auth

import (
	"fmt"
	"time"
)

// Role is what a user may do on the gateway. The roles are ordered: each
// may do what the one before it may.
type Role string

// The roles, from the least to the most allowed.
const (
	// RoleViewer reads: live data, history, alerts.
	RoleViewer Role = "viewer"
	// RoleOperator also acknowledges alerts and chats.
	RoleOperator Role = "operator"
	// RoleAdmin also runs commands on the agent.
	RoleAdmin Role = "admin"
)

// ParseRole returns the Role named s, or an error naming the roles.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleViewer, RoleOperator, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want viewer, operator or admin)", s)
}

// Action is something a role may or may not do.
type Action uint8

// The actions the hub's front ends check.
const (
	// Read is receiving data: subscriptions, history, snapshots.
	Read Action = iota
	// Acknowledge is acknowledging an alert.
	Acknowledge
	// Chat is posting to the floor chat.
	Chat
	// RunCommand is running a command on the agent (read_now, set_interval...).
	RunCommand
)

func (a Action) String() string {
	switch a {
	case Read:
		return "read"
	case Acknowledge:
		return "acknowledge alerts"
	case Chat:
		return "chat"
	case RunCommand:
		return "run commands"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// May reports whether r allows a. An unknown role allows nothing.
func (r Role) May(a Action) bool {
	switch r {
	case RoleViewer:
		return a == Read
	case RoleOperator:
		return a == Read || a == Acknowledge || a == Chat
	case RoleAdmin:
		return a <= RunCommand
	}
	return false
}

// Identity is who made a request, as the hub's front ends see it, however
// they authenticated (a session cookie or a bearer token).
type Identity struct {
	// User is the user's name (a token's sub).
	User string
	// ID is the user's number (the config's users[].id, or a token's uid
	// claim); 0 when unknown.
	ID int64
	// Role is what the user may do.
	Role Role
	// Expires is when the credential ends: a token's exp, or a session's
	// expiry as of the authentication (sessions slide: see Session).
	Expires time.Time
	// Session is the session's key when a session cookie authenticated the
	// request; empty for a token. It is not the cookie's value.
	Session string
}

// May reports whether the identity's role allows a.
func (id *Identity) May(a Action) bool { return id.Role.May(a) }

// DefaultTokenRole is the role of a token that has no role claim and whose
// user is not configured: tokens are minted with the agent's own secret
// (or by the issuer it trusts), so one without a role keeps the full power
// that tokens had before roles existed.
const DefaultTokenRole = RoleAdmin

// UserLookup finds a configured user by name.
type UserLookup func(name string) (id int64, role Role, ok bool)

// TokenIdentity is the identity of verified claims: the role claim when
// there is one, else the configured user's role (lookup may be nil), else
// DefaultTokenRole; the uid claim when there is one, else the configured
// user's id. An unknown role claim gives no role (May is always false).
func TokenIdentity(c *Claims, lookup UserLookup) Identity {
	id := Identity{User: c.Subject, ID: c.UserID, Role: DefaultTokenRole}
	if c.ExpiresAt != nil {
		id.Expires = c.ExpiresAt.Time
	}
	if lookup != nil {
		if uid, role, ok := lookup(c.Subject); ok {
			id.Role = role
			if id.ID == 0 {
				id.ID = uid
			}
		}
	}
	if c.Role != "" {
		id.Role = Role(c.Role)
		if _, err := ParseRole(c.Role); err != nil {
			id.Role = ""
		}
	}
	return id
}
