"""How the report writes numbers and names in LaTeX: fixed decimals with a real minus sign, per
cent, thousands, and values rounded to the decimals they are shown with."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Shown", "fint", "fkilo", "fnum", "fpct", "latex_minus", "short", "tt"]


def latex_minus(text: str) -> str:
    """``-1.5`` -> ``\\ensuremath{-}1.5`` (a minus sign, not a hyphen); other text unchanged."""
    return r"\ensuremath{-}" + text[1:] if text.startswith("-") else text


def fnum(x: float, digits: int = 2, sign: bool = False) -> str:
    """``x`` with ``digits`` decimals, a LaTeX minus, and a + when ``sign`` and not negative."""
    text = f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"
    return latex_minus(text)


def fpct(x: float, digits: int = 2, sign: bool = False) -> str:
    """A fraction as per cent (without the % sign): 0.1234 -> ``12.34``."""
    return fnum(100 * x, digits, sign)


def fint(x: float) -> str:
    """An integer with thin-space thousands separators: 72526 -> ``72\\,526``."""
    return f"{round(x):,}".replace(",", r"\,")


def fkilo(x: float) -> str:
    """Thousands, rounded: 59280 -> ``59k``."""
    return f"{x / 1000:.0f}k"


@dataclass(frozen=True)
class Shown:
    """A number as a results table shows it: ``x`` is already rounded to ``digits`` decimals (so
    that every figure the report derives from it, a maximum or a comparison, agrees with the
    numbers it prints), ``ci`` the half-width of its 95% interval, rounded alike, or None."""

    x: float
    digits: int
    ci: float | None = None

    @classmethod
    def of(cls, mean: float, digits: int, scale: float = 1.0, ci: float | None = None) -> Shown:
        """``scale * mean`` (and ``scale * ci``) rounded to ``digits`` decimals."""
        rounded_ci = None if ci is None else float(f"{scale * ci:.{digits}f}")
        return cls(float(f"{scale * mean:.{digits}f}"), digits, rounded_ci)

    def tex(self, sign: bool = False) -> str:
        return fnum(self.x, self.digits, sign)

    def ci_tex(self) -> str:
        return fnum(self.ci if self.ci is not None else 0.0, self.digits)

    def with_ci_tex(self) -> str:
        """``+1.23\\,$\\pm$\\,0.45``: the signed value and its interval."""
        return f"{self.tex(sign=True)}\\,$\\pm$\\,{self.ci_tex()}"


def short(scenario: str) -> str:
    """Scenario name without the ``azure_`` / ``default_`` prefixes (for narrow tables)."""
    return scenario.replace("azure_", "").replace("default_", "")


def tt(name: str) -> str:
    """A scenario or agent name in typewriter type, underscores escaped."""
    return r"\texttt{" + name.replace("_", r"\_") + "}"
