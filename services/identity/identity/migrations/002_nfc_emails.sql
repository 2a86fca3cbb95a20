-- Emails are compared in their NFC form from now on (domain.normalize_email). An account
-- registered before with a decomposed spelling takes its NFC form, unless that form is already
-- another account's: that older account keeps its spelling rather than lose its rows.
UPDATE users
SET email = normalize(email, NFC)
WHERE email IS NOT NFC NORMALIZED
  AND id IN (
      SELECT DISTINCT ON (normalize(email, NFC)) id
      FROM users
      WHERE email IS NOT NFC NORMALIZED
      ORDER BY normalize(email, NFC), created_at
  )
  AND NOT EXISTS (SELECT 1 FROM users AS taken WHERE taken.email = normalize(users.email, NFC));
