package wire

// SecretsRecipientPath answers any valid token's GET with the cluster's
// age recipients (public): what repositories encrypt their secrets for.
const SecretsRecipientPath = "/secrets/recipient"

// SecretsRecipient is the body of GET /secrets/recipient.
type SecretsRecipient struct {
	// Recipient is the current cluster key's: new secret files are
	// encrypted for it.
	Recipient string `json:"recipient"`
	// Recipients are those of every key sync decrypts with: Recipient
	// first, then the older keys a rotation keeps in cluster.agekey
	// until its commit is synced. A server before this field gives only
	// Recipient.
	Recipients []string `json:"recipients,omitempty"`
}
