-- What the dashboard reads: one row per account with its order total.
CREATE VIEW account_totals AS
SELECT a.id AS account_id, a.email, coalesce(sum(o.total_cents), 0) AS total_cents
FROM accounts a
LEFT JOIN orders o ON o.account_id = a.id
GROUP BY a.id, a.email;
