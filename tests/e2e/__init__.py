"""End-to-end tests: the real milter behind a real Postfix and a real Sendmail on loopback."""
