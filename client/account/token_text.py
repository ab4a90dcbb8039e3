"""Whether a piece of text can be a RunComfy token: checked before it is sent or stored."""

from __future__ import annotations

from ..errors import ConfigurationError

MAX_TOKEN_LENGTH = 512


def check_token_text(token: str) -> str:
    """The token without surrounding whitespace, or an error naming what is wrong (never the token).

    Checked before anything is sent or stored: a token pasted with a line
    break or a typographic character inside would otherwise only fail as an
    unreadable HTTP header or a rejection from RunComfy.
    """
    if not isinstance(token, str):
        raise ConfigurationError("The API token must be text")
    token = token.strip()
    if not token:
        raise ConfigurationError("The API token is empty: paste the token from your RunComfy profile (API Keys)")
    if len(token) > MAX_TOKEN_LENGTH:
        raise ConfigurationError(
            f"The API token is too long ({len(token)} characters, at most {MAX_TOKEN_LENGTH}): paste only the token"
        )
    for position, character in enumerate(token, start=1):
        if character.isspace():
            raise ConfigurationError(
                f"The API token has a space or line break inside (character {position}): paste it in one piece"
            )
        if not "!" <= character <= "~":
            raise ConfigurationError(
                f"The API token has a character that is not plain ASCII (character {position}): "
                "copy it again from your RunComfy profile"
            )
    return token


def checked_token(token: str, source: str) -> str:
    """``check_token_text``, its error saying where the token came from."""
    try:
        return check_token_text(token)
    except ConfigurationError as error:
        raise ConfigurationError(f"{error} (the token in {source})") from None
