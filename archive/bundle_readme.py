"""The README of an evidence bundle, in French and English, with the exact commands an
auditor runs on it. Text only: the commands are tested against real bundles
(``tests/archive/test_bundle.py`` runs every line that starts with ``    $ ``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from archive import bundle_format as fmt

#: Prefix of every command line in the README (the tests pick them up by it).
PROMPT = "    $ "


@dataclass(frozen=True)
class Commands:
    unzip: str
    cd: str
    sums: str
    fingerprint: str
    chain: str
    anchor: str
    coffre: str
    timestamp: str | None = None
    timestamp_crl: str | None = None
    cms: str | None = None
    cms_crl: str | None = None
    cms_pyhanko: str | None = None
    pades: str | None = None

    @classmethod
    def for_bundle(
        cls,
        *,
        top: str,
        original: str | None,
        signature: str | None,
        token: str | None,
        sealed: str | None,
    ) -> Commands:
        roots, crls, tsa = fmt.ROOTS, fmt.ROOTS_AND_CRLS, fmt.TSA_CERTS
        timestamp = timestamp_crl = cms = cms_crl = cms_pyhanko = pades = None
        if original and token:
            base = f"openssl ts -verify -data {original} -in {token}"
            timestamp = f"{base} -CAfile {roots} -untrusted {tsa}"
            timestamp_crl = f"{base} -CAfile {crls} -untrusted {tsa} -crl_check_all"
        if original and signature:
            base = f"openssl cms -verify -binary -inform DER -in {signature} -content {original}"
            cms = f"{base} -CAfile {roots} -purpose any -out /dev/null"
            cms_crl = f"{base} -CAfile {crls} -purpose any -crl_check_all -out /dev/null"
            cms_pyhanko = (
                f"pyhanko sign validate --trust {roots} --trust-replace --no-revocation-check "
                f"--detached {signature} {original}"
            )
        if sealed:
            pades = (
                f"pyhanko sign validate --trust {roots} --trust-replace --no-revocation-check "
                f"{sealed}"
            )
        return cls(
            unzip=f"unzip {top}.zip",
            cd=f"cd {top}",
            sums=f"sha256sum -c {fmt.SHA256SUMS}",
            fingerprint=f"openssl x509 -in {roots} -noout -fingerprint -sha256",
            chain=f"python3 {fmt.CHAIN_CHECK}",
            anchor=(
                f"openssl ts -verify -data {fmt.ANCHOR_BODY} -in {fmt.ANCHOR_TOKEN} "
                f"-CAfile {roots} -untrusted {tsa}"
            ),
            coffre=f"coffre verify-bundle ../{top}.zip",
            timestamp=timestamp,
            timestamp_crl=timestamp_crl,
            cms=cms,
            cms_crl=cms_crl,
            cms_pyhanko=cms_pyhanko,
            pades=pades,
        )


def _run(*commands: str | None) -> str:
    return "\n".join(PROMPT + c for c in commands if c)


def readme(lang: Literal["fr", "en"], c: Commands, *, development: bool) -> str:
    text = _FR if lang == "fr" else _EN
    sections = [text["intro"]]
    if development:
        sections.append(text["development"])
    sections += [
        text["contents"],
        text["unpack"] + "\n" + _run(c.unzip, c.cd),
        text["sums"].format(cmd=_run(c.sums)),
        text["root"].format(cmd=_run(c.fingerprint)),
    ]
    if c.timestamp:
        sections.append(text["timestamp"].format(cmd=_run(c.timestamp), crl=_run(c.timestamp_crl)))
    if c.cms:
        sections.append(
            text["cms"].format(cmd=_run(c.cms), crl=_run(c.cms_crl), pyhanko=_run(c.cms_pyhanko))
        )
    if c.pades:
        sections.append(text["pades"].format(cmd=_run(c.pades)))
    else:
        sections.append(text["no_pades"])
    sections += [
        text["journal"].format(chain=_run(c.chain), anchor=_run(c.anchor)),
        text["coffre"].format(cmd=_run(c.coffre)),
    ]
    return "\n\n".join(s.strip("\n") for s in sections) + "\n"


_EN = {
    "intro": """\
Coffre: evidence bundle of one archived document
================================================

This folder proves that the document under artifacts/ is the one Coffre archived, byte
for byte as received, sealed and timestamped, and shows what happened to it (its
journal). Every check below runs offline with standard tools: no Coffre server, no
database. The same text in French: README.fr.txt.
""",
    "development": """\
WARNING: DEVELOPMENT PKI. The certificates of this bundle say DEVELOPMENT: they come from
a test installation of Coffre. The checks work the same way, but these seals and
timestamps carry no legal value.
""",
    "contents": """\
What is here
  artifacts/original.*        the document exactly as received (its SHA-256 identifies it)
  artifacts/original.p7s      detached CMS seal (cachet serveur) over the original, with
                              its own signature timestamp
  artifacts/original.tsr      RFC 3161 timestamp token over the original's SHA-256
  artifacts/sealed.pdf        (when there is one) the archival PDF with a PAdES seal: for a
                              PDF deposited as it is, that PDF with the seal added as an
                              incremental update (the original is its beginning); for a
                              scan, its PDF/A
  artifacts/...               files Coffre derived from it (invoice data invoice.json,
                              validation report, embedded XML)
  certificates/root.pem       the trust root(s) the seals and timestamps chain to
  certificates/seal.pem       the seal certificate (and intermediates)
  certificates/tsa.pem        the timestamp authority's certificate(s)
  certificates/crls.pem       the certificate revocation lists (CRLs) used
  certificates/root-and-crls.pem  root.pem then crls.pem, for openssl's revocation check
  document.json               the document's record at export (company, kind, state...)
  invoice-data.json           (e-invoices) every version of the invoice data
  validation-report.json      Coffre's own verification at export: a statement, not a proof
  journal/events.json         the document's journal events, full rows
  journal/chain.jsonl         the hash chain, from the document's first event to the anchor
  journal/anchor.json         the journal anchor that covers the document's last event
  journal/anchor-body.json    the exact bytes whose SHA-256 the anchor's token covers
  journal/anchor.tsr          the anchor's RFC 3161 token
  journal/check_chain.py      recomputes the chain (Python standard library only, read it)
  manifest.json               every file with its SHA-256, size and role
  SHA256SUMS                  the same list, for sha256sum
""",
    "unpack": """\
Commands. Run them in this order: step 0 where the ZIP is, the others in the folder it
unpacks to. Each must succeed (exit status 0).

0. Unpack""",
    "sums": """\
1. The files are complete and unchanged since the export. Every line must say OK.
{cmd}
   This only shows that the files match the list shipped with them; the proofs follow.
""",
    "root": """\
2. Which root you trust. Every check below trusts certificates/root.pem. Compare its
   fingerprint with one you got from elsewhere (the trust service provider, the company);
   or put your own copy of the root in place of certificates/root.pem in the commands.
{cmd}
""",
    "timestamp": """\
3. Timestamp of the original (RFC 3161): the original existed with exactly these bytes at
   the time written in the token. Expect "Verification: OK".
{cmd}
   The same, also checking that no certificate was revoked (CRLs of the bundle):
{crl}
   -untrusted only hands openssl the TSA certificate to build the chain; root.pem alone
   is trusted (openssl may warn that tsa.pem "is not a CA cert": expected, it is the
   TSA's own certificate).
""",
    "cms": """\
4. Detached seal (CMS, cachet serveur) over the original. Expect "Verification successful".
{cmd}
   With the revocation check against the bundle's CRLs:
{crl}
   -binary compares the original byte for byte (without it openssl converts the line ends
   of a text or XML file, as for e-mail); -inform DER: the .p7s is DER; -purpose any: a
   seal certificate is not an e-mail (S/MIME) certificate, so openssl must not demand an
   e-mail usage (pyHanko and coffre verify-bundle check the key usage); -out /dev/null:
   do not print the content.
   The same with pyHanko, which also checks the seal's own timestamp. Expect
   "INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>".
{pyhanko}
""",
    "pades": """\
5. PAdES seal of the archival PDF. Expect "INTACT:TRUSTED" (and TIMESTAMP_TOKEN<INTACT:TRUSTED>).
{cmd}
   Why --no-revocation-check: pyHanko's command line looks for revocation information
   online, at the address written in the certificates, and does not use the CRLs embedded
   in the PDF itself (PAdES B-LT/B-LTA). Offline, years later, or with a development PKI
   whose address is a local Coffre server, it would answer UNTRUSTED for that reason
   alone. Revocation is checked instead by steps 3 and 4 (-crl_check_all, CRLs of the
   bundle) and by coffre verify-bundle (CRLs embedded in the PDF). --trust-replace: trust
   root.pem only, not the roots of your system.
""",
    "no_pades": """\
5. There is no PAdES copy: this document (an e-invoice, say) is kept exactly as received,
   never signed in place; steps 3 and 4 are its proof.
""",
    "journal": """\
6. The journal. check_chain.py recomputes each event's hash (SHA-256 of the canonical
   JSON, sorted keys and no spaces, of seq, recorded_at, actor, action, subject,
   payload_digest, prev_hash, hash_alg), follows the prev_hash links, checks that the
   chain ends at the anchored head, that journal/events.json is exactly the document's
   events of the chain, and that each file under artifacts/ has the SHA-256 the journal
   recorded. Expect "Journal chain: OK".
{chain}
   Then the anchor's timestamp: anchor-body.json names the chain head (head_seq,
   head_hash) and its SHA-256 is what the token covers. Expect "Verification: OK".
{anchor}
   The chain holds every event between the document's first event and the anchor, so no
   event of this document up to the anchor can be missing from it (the export itself is
   journaled after it). Events of other subjects (other documents...) are given without
   their payload: a hash covers the payload's digest (payload_digest), not the payload,
   so the chain recomputes all the same, and other companies' data stay private.
""",
    "coffre": """\
7. Everything at once, with Coffre's verifier (Coffre installed; it needs no server, no
   database, no configuration). Exit status 0: every check holds; 1: a check failed and
   the report names it; 3: the bundle cannot be read.
{cmd}
   By default it trusts the roots shipped in the bundle, and says so in its report; to
   pin a root you obtained yourself, add --trust YOUR-ROOT.pem.
""",
}

_FR = {
    "intro": """\
Coffre : dossier de preuve d'un document archivé
================================================

Ce dossier prouve que le document placé sous artifacts/ est celui que Coffre a archivé,
octet pour octet tel que reçu, scellé et horodaté, et montre ce qui lui est arrivé (son
journal). Chaque vérification ci-dessous se fait hors ligne avec des outils standard :
ni serveur Coffre, ni base de données. Le même texte en anglais : README.en.txt.
""",
    "development": """\
ATTENTION : PKI DE DÉVELOPPEMENT. Les certificats de ce dossier portent la mention
DEVELOPMENT : ils viennent d'une installation de test de Coffre. Les vérifications
fonctionnent de la même façon, mais ces cachets et horodatages n'ont aucune valeur légale.
""",
    "contents": """\
Contenu
  artifacts/original.*        le document exactement tel que reçu (son SHA-256 l'identifie)
  artifacts/original.p7s      cachet serveur détaché (CMS) sur l'original, avec son propre
                              horodatage de signature
  artifacts/original.tsr      jeton d'horodatage RFC 3161 sur le SHA-256 de l'original
  artifacts/sealed.pdf        (s'il existe) le PDF d'archivage scellé PAdES : pour un PDF
                              déposé tel quel, ce PDF avec le cachet ajouté par mise à jour
                              incrémentale (l'original en est le début) ; pour une
                              numérisation, son PDF/A
  artifacts/...               fichiers que Coffre en a tirés (données de facture
                              invoice.json, rapport de validation, XML embarqué)
  certificates/root.pem       la ou les racines de confiance des cachets et horodatages
  certificates/seal.pem       le certificat de cachet (et ses intermédiaires)
  certificates/tsa.pem        le ou les certificats de l'autorité d'horodatage
  certificates/crls.pem       les listes de révocation (CRL) utilisées
  certificates/root-and-crls.pem  root.pem puis crls.pem, pour le contrôle de révocation d'openssl
  document.json               la fiche du document à l'export (société, nature, état...)
  invoice-data.json           (factures électroniques) chaque version des données de facture
  validation-report.json      la vérification faite par Coffre à l'export : une
                              déclaration de Coffre, pas une preuve
  journal/events.json         les événements du journal concernant le document, complets
  journal/chain.jsonl         la chaîne de hachage, du premier événement du document à l'ancre
  journal/anchor.json         l'ancre du journal qui couvre le dernier événement du document
  journal/anchor-body.json    les octets exacts dont le jeton de l'ancre couvre le SHA-256
  journal/anchor.tsr          le jeton RFC 3161 de l'ancre
  journal/check_chain.py      recalcule la chaîne (bibliothèque standard de Python
                              seulement, à lire)
  manifest.json               chaque fichier avec son SHA-256, sa taille et son rôle
  SHA256SUMS                  la même liste, pour sha256sum
""",
    "unpack": """\
Commandes. Lancez-les dans cet ordre : l'étape 0 là où se trouve le ZIP, les autres dans
le dossier créé par la décompression. Chacune doit réussir (code de retour 0).

0. Décompresser""",
    "sums": """\
1. Les fichiers sont complets et inchangés depuis l'export. Chaque ligne doit dire OK.
{cmd}
   Ceci montre seulement que les fichiers correspondent à la liste livrée avec eux ; les
   preuves suivent.
""",
    "root": """\
2. La racine à laquelle vous faites confiance. Toutes les vérifications ci-dessous font
   confiance à certificates/root.pem. Comparez son empreinte avec celle obtenue par une
   autre voie (le prestataire de services de confiance, la société) ; ou mettez votre
   propre copie de la racine à la place de certificates/root.pem dans les commandes.
{cmd}
""",
    "timestamp": """\
3. Horodatage de l'original (RFC 3161) : l'original existait avec exactement ces octets à
   la date inscrite dans le jeton. Résultat attendu : « Verification: OK ».
{cmd}
   La même, en vérifiant aussi qu'aucun certificat n'est révoqué (CRL du dossier) :
{crl}
   -untrusted donne seulement à openssl le certificat de l'autorité d'horodatage pour
   construire la chaîne ; seule root.pem est de confiance (openssl peut avertir que
   tsa.pem « is not a CA cert » : c'est normal, c'est le certificat de l'autorité).
""",
    "cms": """\
4. Cachet serveur détaché (CMS) sur l'original. Résultat attendu : « Verification successful ».
{cmd}
   Avec le contrôle de révocation par les CRL du dossier :
{crl}
   -binary compare l'original octet pour octet (sans cette option, openssl convertit les
   fins de ligne d'un fichier texte ou XML, comme pour un courriel) ; -inform DER : le
   .p7s est en DER ; -purpose any : un certificat de cachet n'est pas un certificat de
   messagerie (S/MIME), openssl ne doit donc pas exiger cet usage (pyHanko et coffre
   verify-bundle contrôlent l'usage de la clé) ; -out /dev/null : ne pas afficher le contenu.
   La même vérification avec pyHanko, qui contrôle aussi l'horodatage du cachet. Résultat
   attendu : « INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED> ».
{pyhanko}
""",
    "pades": """\
5. Cachet PAdES de la copie d'archivage PDF. Résultat attendu : « INTACT:TRUSTED » (et
   TIMESTAMP_TOKEN<INTACT:TRUSTED>).
{cmd}
   Pourquoi --no-revocation-check : la ligne de commande de pyHanko cherche les
   informations de révocation en ligne, à l'adresse inscrite dans les certificats, et
   n'utilise pas les CRL incorporées au PDF lui-même (PAdES B-LT/B-LTA). Hors ligne, des
   années plus tard, ou avec une PKI de développement dont l'adresse est un serveur Coffre
   local, elle répondrait UNTRUSTED pour cette seule raison. La révocation est contrôlée
   par les étapes 3 et 4 (-crl_check_all, CRL du dossier) et par coffre verify-bundle (CRL
   incorporées au PDF). --trust-replace : ne faire confiance qu'à root.pem, pas aux
   racines de votre système.
""",
    "no_pades": """\
5. Il n'y a pas de copie PAdES : ce document (une facture électronique, par exemple) est
   conservé exactement tel que reçu, jamais signé sur place ; les étapes 3 et 4 en sont la
   preuve.
""",
    "journal": """\
6. Le journal. check_chain.py recalcule l'empreinte de chaque événement (SHA-256 du JSON
   canonique, clés triées et sans espaces, de seq, recorded_at, actor, action, subject,
   payload_digest, prev_hash, hash_alg), suit les liens prev_hash, vérifie que la chaîne
   se termine à la tête ancrée, que journal/events.json contient exactement les
   événements du document présents dans la chaîne, et que chaque fichier sous artifacts/
   a le SHA-256 enregistré au journal. Résultat attendu : « Journal chain: OK ».
{chain}
   Puis l'horodatage de l'ancre : anchor-body.json désigne la tête de la chaîne
   (head_seq, head_hash) et son SHA-256 est ce que couvre le jeton. Résultat attendu :
   « Verification: OK ».
{anchor}
   La chaîne contient tous les événements entre le premier événement du document et
   l'ancre : aucun événement de ce document jusqu'à l'ancre ne peut y manquer (l'export
   lui-même est journalisé après). Les événements d'autres sujets (autres documents...)
   y figurent sans leur contenu (payload) : une empreinte couvre le condensé du contenu
   (payload_digest), pas le contenu, la chaîne se recalcule donc de même, et les données
   des autres sociétés restent confidentielles.
""",
    "coffre": """\
7. Tout à la fois, avec le vérificateur de Coffre (Coffre installé ; il n'a besoin ni de
   serveur, ni de base de données, ni de configuration). Code de retour 0 : tout est
   vérifié ; 1 : une vérification a échoué et le rapport la nomme ; 3 : le dossier est
   illisible.
{cmd}
   Par défaut il fait confiance aux racines livrées dans le dossier, et le dit dans son
   rapport ; pour imposer une racine obtenue par vous-même, ajoutez --trust VOTRE-RACINE.pem.
""",
}
