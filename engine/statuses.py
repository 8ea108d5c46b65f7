"""How a status code reads in a message, in the customer's language.

Booknetic's statuses (the default of ``[workflows] statuses``) have a label in
the languages of the seed documents: English, Italian, French, German,
Turkish and Spanish. ``appointment_status`` is that label (the English one in
another language); a status without one (a code of the booking application's
own) reads as its code, which ``appointment_status_code`` always gives.
"""

from __future__ import annotations

from babel import Locale

LABELS: dict[str, dict[str, str]] = {
    "en": {"pending": "Pending", "approved": "Approved", "canceled": "Canceled", "rejected": "Rejected",
           "no-show": "No-show", "completed": "Completed"},
    "it": {"pending": "In attesa", "approved": "Approvato", "canceled": "Annullato", "rejected": "Rifiutato",
           "no-show": "Non presentato", "completed": "Completato"},
    "fr": {"pending": "En attente", "approved": "Approuvé", "canceled": "Annulé", "rejected": "Refusé",
           "no-show": "Absent", "completed": "Terminé"},
    "de": {"pending": "Ausstehend", "approved": "Bestätigt", "canceled": "Storniert", "rejected": "Abgelehnt",
           "no-show": "Nicht erschienen", "completed": "Abgeschlossen"},
    "tr": {"pending": "Beklemede", "approved": "Onaylandı", "canceled": "İptal edildi", "rejected": "Reddedildi",
           "no-show": "Gelmedi", "completed": "Tamamlandı"},
    "es": {"pending": "Pendiente", "approved": "Aprobado", "canceled": "Cancelado", "rejected": "Rechazado",
           "no-show": "No presentado", "completed": "Completado"},
}


def status_label(code: str | None, locale: Locale) -> str:
    """The label of *code* in *locale*'s language (English when that language has none), else the code."""
    if not code:
        return ""
    labels = LABELS.get(locale.language, LABELS["en"])
    return labels.get(code, code)
