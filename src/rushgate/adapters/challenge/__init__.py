"""Bot challenge verifiers: CAPTCHA providers (Turnstile, hCaptcha) and proof of work."""
