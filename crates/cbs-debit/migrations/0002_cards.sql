-- Which account a card debits: card transactions name the card, not the account.
CREATE TABLE cards (
    card_id    TEXT PRIMARY KEY CHECK (card_id <> ''),
    account_id TEXT NOT NULL REFERENCES accounts (id)
);
