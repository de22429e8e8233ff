package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/hub/chat"
	"github.com/floorhub/floorhub/hub/engineio"
	"github.com/floorhub/floorhub/hub/socketio"
	"github.com/floorhub/floorhub/store"
)

// ChatConfig configures the floor chat (Socket.IO at /socket.io/, docs/chat.md).
// Zero means the default of each field.
type ChatConfig struct {
	// MaxMessageBytes caps one message's text, in bytes. Default 2048, 1
	// to 65536; above 64512 (63 KiB) it acts as 64512, since a stored
	// record, the sender's name and times with the text, is at most 64
	// KiB. Earlier versions took up to 65536, so a config that says so
	// still starts.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// EventsPerSecond caps the events of one connection, per second.
	// Default 20, 1 to 10000.
	EventsPerSecond int `yaml:"events_per_second"`
	// MaxConnsPerUser caps one user's connections at once, and their
	// connects a second. Default 10, 1 to 10000.
	MaxConnsPerUser int `yaml:"max_connections_per_user"`
	// MaxMessages caps the messages kept, a count; the oldest go first.
	// Default 20000, 100 to 10000000.
	MaxMessages int `yaml:"max_messages"`
	// MaxBytes caps the same messages by size ("8MiB" or bytes). Default
	// 8MiB, at least 64KiB. Telemetry never evicts chat messages.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MaxChats caps the chats; creating one more fails. Default 1000, 1
	// to 1000000.
	MaxChats int `yaml:"max_chats"`
	// MaxChatsPerUser caps the chats one user belongs to; past it the user
	// cannot start another. Default 100, 1 to 1000000.
	MaxChatsPerUser int `yaml:"max_chats_per_user"`
}

// checkChat validates the chat section.
func (c *Config) checkChat() error {
	ch := &c.Chat
	for _, f := range []struct {
		key      string
		v        int64
		min, max int64
	}{
		{"max_message_bytes", int64(ch.MaxMessageBytes), 1, 65536},
		{"events_per_second", int64(ch.EventsPerSecond), 1, 10000},
		{"max_connections_per_user", int64(ch.MaxConnsPerUser), 1, 10000},
		{"max_messages", int64(ch.MaxMessages), 100, 10_000_000},
		{"max_bytes", int64(ch.MaxBytes), 64 << 10, 1 << 40},
		{"max_chats", int64(ch.MaxChats), 1, 1_000_000},
		{"max_chats_per_user", int64(ch.MaxChatsPerUser), 1, 1_000_000},
	} {
		if f.v != 0 && (f.v < f.min || f.v > f.max) {
			return c.errf("chat."+f.key, []string{"chat", f.key}, "%d: want %d to %d (0: the default)", f.v, f.min, f.max)
		}
	}
	return nil
}

// chatOptions are the chat's options from the config; wire adds the
// store, the verifier and the logger.
func (c *Config) chatOptions() chat.Options {
	return chat.Options{
		MaxMessageBytes: min(c.Chat.MaxMessageBytes, maxChatMessageBytes),
		EventsPerSecond: c.Chat.EventsPerSecond,
		MaxConnsPerUser: c.Chat.MaxConnsPerUser,
		MaxChatsPerUser: c.Chat.MaxChatsPerUser,
		SocketIO: socketio.Options{
			// A chat packet carries no binary: one attachment is plenty.
			MaxAttachments: 1,
			// An Engine.IO session exists before its client has
			// authenticated (Socket.IO CONNECT); a browser connects within
			// a second, so an idle session need not hold its place for
			// the default 45 s.
			ConnectTimeout: chatConnectTimeout,
			// A message is at most 63 KiB of text (chat.max_message_bytes):
			// nothing a client sends at once needs more.
			Engine: engineio.Options{MaxPayload: 256 << 10},
		},
	}
}

// maxChatMessageBytes is the longest message text a stored record holds
// with room for its sender's name and times (a record is at most 64 KiB).
const maxChatMessageBytes = 63 << 10

// chatConnectTimeout is how long a chat session may stay without its
// Socket.IO CONNECT.
const chatConnectTimeout = 10 * time.Second

// centralUser is the user number of every central (chat_post) sender;
// their name tells them apart.
const centralUser = -1

// chatPost runs the chat_post command: {"chat_id": 1, "user": "control
// room", "message": "..."}.
func (a *Agent) chatPost(_ context.Context, args json.RawMessage) (any, error) {
	var p struct {
		ChatID  *uint64 `json:"chat_id"`
		User    string  `json:"user"`
		Message string  `json:"message"`
	}
	if err := strictArgs(args, &p); err != nil {
		return nil, err
	}
	switch {
	case p.ChatID == nil || *p.ChatID == 0:
		return nil, fmt.Errorf("%w: chat_id (a positive number) is required", command.ErrBadArgs)
	case strings.TrimSpace(p.User) == "" || len(p.User) > 64:
		return nil, fmt.Errorf("%w: user (the central sender's name, 1 to 64 bytes) is required", command.ErrBadArgs)
	}
	if a.chat == nil {
		return nil, fmt.Errorf("chat_post: the chat is not running")
	}
	m, err := a.chat.Post(*p.ChatID, centralUser, p.User, p.Message)
	switch {
	case errors.Is(err, chat.ErrBadRequest), errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("%w: %v", command.ErrBadArgs, err)
	case err != nil:
		return nil, fmt.Errorf("chat_post: %w", err)
	}
	return m, nil
}
