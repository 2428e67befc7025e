package p2p

import (
	"errors"
	"fmt"
	"io"
)

// PeerIDLen is the length of a peer_id: 20 ASCII characters, sent as their
// 20 bytes (spec §2.3).
const PeerIDLen = 20

// peerIDAlphabet is the character set the client draws the random part of
// its peer_id from.
const peerIDAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// ErrInvalidPeerIDPrefix reports a peer_id prefix that is not printable
// ASCII or is longer than PeerIDLen.
var ErrInvalidPeerIDPrefix = errors.New("invalid peer_id prefix")

// NewPeerID returns a 20-character peer_id: prefix (e.g. "-CP0001-")
// followed by characters drawn uniformly from [A-Za-z0-9] using bytes read
// from rand (normally crypto/rand.Reader). The prefix must be printable
// ASCII and at most 20 characters long. Browsers allow one connection per
// remote peer_id per swarm, so every seeder instance needs its own id.
func NewPeerID(prefix string, rand io.Reader) (string, error) {
	if len(prefix) > PeerIDLen {
		return "", fmt.Errorf("p2p: peer id prefix %q is longer than %d bytes: %w", prefix, PeerIDLen, ErrInvalidPeerIDPrefix)
	}
	for i := 0; i < len(prefix); i++ {
		if prefix[i] < 0x20 || prefix[i] > 0x7e {
			return "", fmt.Errorf("p2p: peer id prefix %q has a non-printable-ASCII byte at %d: %w", prefix, i, ErrInvalidPeerIDPrefix)
		}
	}
	id := make([]byte, PeerIDLen)
	n := copy(id, prefix)
	var buf [32]byte
	for n < PeerIDLen {
		if _, err := io.ReadFull(rand, buf[:]); err != nil {
			return "", fmt.Errorf("p2p: read random bytes for peer id: %w", err)
		}
		for _, b := range buf {
			// Rejection sampling keeps the choice uniform: 248 is the
			// largest multiple of 62 not above 256.
			if b >= 248 {
				continue
			}
			id[n] = peerIDAlphabet[int(b)%len(peerIDAlphabet)]
			n++
			if n == PeerIDLen {
				break
			}
		}
	}
	return string(id), nil
}
