/**
 * Names of common BER-TLV tags (ISO/IEC 7816-4, EMV Book 3 Annex A, GlobalPlatform Card Spec),
 * for the tree view and trace annotations. Data only.
 *
 * A tag's meaning can depend on the template it sits in: 80 is "Response Message Template Format
 * 1" in an EMV GET PROCESSING OPTIONS answer but "Number of data bytes" inside an ISO FCP (62).
 * `TLV_TAGS` holds the usual meaning; `TLV_TAGS_IN_TEMPLATE` overrides it for a parent tag.
 */

export type TagSource = 'ISO 7816-4' | 'EMV' | 'GlobalPlatform';

export interface TagInfo {
  readonly name: string;
  readonly source: TagSource;
}

const iso = (name: string): TagInfo => ({ name, source: 'ISO 7816-4' });
const emv = (name: string): TagInfo => ({ name, source: 'EMV' });
const gp = (name: string): TagInfo => ({ name, source: 'GlobalPlatform' });

export const TLV_TAGS: ReadonlyMap<number, TagInfo> = new Map<number, TagInfo>([
  // ISO 7816-4 interindustry
  [0x06, iso('Object identifier')],
  [0x42, iso('Issuer identification number')],
  [0x45, gp('Card image number')],
  [0x4f, iso('Application identifier (AID)')],
  [0x50, iso('Application label')],
  [0x51, iso('Path')],
  [0x52, iso('Command to perform')],
  [0x53, iso('Discretionary data')],
  [0x5f50, iso('Uniform resource locator')],
  [0x61, iso('Application template')],
  [0x62, iso('File control parameters (FCP) template')],
  [0x64, iso('File management data (FMD) template')],
  [0x66, gp('Card data')],
  [0x6f, iso('File control information (FCI) template')],
  [0x73, iso('Discretionary data objects')],
  [0x7f21, iso('Cardholder certificate')],
  [0x84, iso('DF name')],
  [0x88, emv('Short file identifier (SFI)')],
  [0xa5, emv('FCI proprietary template')],
  [0xbf0c, emv('FCI issuer discretionary data')],
  // EMV Book 3 Annex A
  [0x57, emv('Track 2 equivalent data')],
  [0x5a, emv('Application primary account number (PAN)')],
  [0x5f20, emv('Cardholder name')],
  [0x5f24, emv('Application expiration date')],
  [0x5f25, emv('Application effective date')],
  [0x5f28, emv('Issuer country code')],
  [0x5f2a, emv('Transaction currency code')],
  [0x5f2d, emv('Language preference')],
  [0x5f30, emv('Service code')],
  [0x5f34, emv('PAN sequence number')],
  [0x5f36, emv('Transaction currency exponent')],
  [0x70, emv('READ RECORD response message template')],
  [0x71, emv('Issuer script template 1')],
  [0x72, emv('Issuer script template 2')],
  [0x77, emv('Response message template format 2')],
  [0x80, emv('Response message template format 1')],
  [0x82, emv('Application interchange profile (AIP)')],
  [0x83, emv('Command template')],
  [0x87, emv('Application priority indicator')],
  [0x8a, emv('Authorisation response code')],
  [0x8c, emv('Card risk management data object list 1 (CDOL1)')],
  [0x8d, emv('Card risk management data object list 2 (CDOL2)')],
  [0x8e, emv('Cardholder verification method (CVM) list')],
  [0x8f, emv('Certification authority public key index')],
  [0x90, emv('Issuer public key certificate')],
  [0x92, emv('Issuer public key remainder')],
  [0x93, emv('Signed static application data')],
  [0x94, emv('Application file locator (AFL)')],
  [0x95, emv('Terminal verification results (TVR)')],
  [0x9a, emv('Transaction date')],
  [0x9b, emv('Transaction status information')],
  [0x9c, emv('Transaction type')],
  [0x9d, emv('Directory definition file (DDF) name')],
  [0x9f01, emv('Acquirer identifier')],
  [0x9f02, emv('Amount, authorised (numeric)')],
  [0x9f03, emv('Amount, other (numeric)')],
  [0x9f06, emv('Application identifier (AID), terminal')],
  [0x9f07, emv('Application usage control')],
  [0x9f08, emv('Application version number (card)')],
  [0x9f09, emv('Application version number (terminal)')],
  [0x9f0d, emv('Issuer action code, default')],
  [0x9f0e, emv('Issuer action code, denial')],
  [0x9f0f, emv('Issuer action code, online')],
  [0x9f10, emv('Issuer application data')],
  [0x9f11, emv('Issuer code table index')],
  [0x9f12, emv('Application preferred name')],
  [0x9f13, emv('Last online ATC register')],
  [0x9f17, emv('PIN try counter')],
  [0x9f1a, emv('Terminal country code')],
  [0x9f1f, emv('Track 1 discretionary data')],
  [0x9f21, emv('Transaction time')],
  [0x9f26, emv('Application cryptogram')],
  [0x9f27, emv('Cryptogram information data')],
  [0x9f32, emv('Issuer public key exponent')],
  [0x9f33, emv('Terminal capabilities')],
  [0x9f34, emv('Cardholder verification method (CVM) results')],
  [0x9f35, emv('Terminal type')],
  [0x9f36, emv('Application transaction counter (ATC)')],
  [0x9f37, emv('Unpredictable number')],
  [0x9f38, emv('Processing options data object list (PDOL)')],
  [0x9f42, emv('Application currency code')],
  [0x9f44, emv('Application currency exponent')],
  [0x9f45, emv('Data authentication code')],
  [0x9f46, emv('ICC public key certificate')],
  [0x9f47, emv('ICC public key exponent')],
  [0x9f48, emv('ICC public key remainder')],
  [0x9f49, emv('Dynamic data authentication data object list (DDOL)')],
  [0x9f4a, emv('Static data authentication tag list')],
  [0x9f4b, emv('Signed dynamic application data')],
  [0x9f4c, emv('ICC dynamic number')],
  [0x9f4d, emv('Log entry')],
  [0x9f4e, emv('Merchant name and location')],
  [0x9f4f, emv('Log format')],
  // GlobalPlatform
  [0x9f70, gp('Life cycle state')],
  [0x9f7f, gp('Card production life cycle (CPLC) data')],
  [0xc4, gp('Executable load file AID')],
  [0xc5, gp('Privileges')],
  [0xcf, gp('Key diversification data')],
  [0xe0, gp('Key information template')],
  [0xe3, gp('GlobalPlatform registry entry')],
]);

/** Meanings that depend on the enclosing template, keyed by parent tag. */
export const TLV_TAGS_IN_TEMPLATE: ReadonlyMap<number, ReadonlyMap<number, TagInfo>> = new Map([
  [
    0x62, // ISO 7816-4 FCP template
    new Map<number, TagInfo>([
      [0x80, iso('Number of data bytes in the file')],
      [0x81, iso('Number of data bytes including structural information')],
      [0x82, iso('File descriptor')],
      [0x83, iso('File identifier')],
      [0x84, iso('DF name')],
      [0x85, iso('Proprietary information (primitive)')],
      [0x86, iso('Security attribute (proprietary format)')],
      [0x88, iso('Short EF identifier')],
      [0x8a, iso('Life cycle status')],
      [0x8b, iso('Security attribute referencing the expanded format')],
      [0x8c, iso('Security attribute (compact format)')],
      [0xa5, iso('Proprietary information (BER-TLV)')],
      [0xab, iso('Security attribute (expanded format)')],
    ]),
  ],
  [
    0x73, // GlobalPlatform card recognition data (inside 66 Card data)
    new Map<number, TagInfo>([
      [0x06, gp('Card recognition data OID')],
      [0x60, gp('Card management type and version')],
      [0x63, gp('Card identification scheme')],
      [0x64, gp('Secure channel protocol and options')],
      [0x65, gp('Card configuration details')],
      [0x66, gp('Card / chip details')],
      [0x67, gp('Security domain trust point certificate information')],
      [0x68, gp('Security domain certificate information')],
    ]),
  ],
  [
    0x66, // GlobalPlatform card data
    new Map<number, TagInfo>([[0x73, gp('Card recognition data')]]),
  ],
  [
    0xe3, // GlobalPlatform GET STATUS registry entry
    new Map<number, TagInfo>([
      [0x4f, gp('AID')],
      [0x84, gp('Executable module AID')],
      [0xce, gp('Executable load file version number')],
    ]),
  ],
]);

/** The tag's name in its template (if given), else its usual name, else undefined. */
export function tlvTagInfo(tag: number, parentTag?: number): TagInfo | undefined {
  if (parentTag !== undefined) {
    const inTemplate = TLV_TAGS_IN_TEMPLATE.get(parentTag)?.get(tag);
    if (inTemplate) return inTemplate;
  }
  return TLV_TAGS.get(tag);
}

export function tlvTagName(tag: number, parentTag?: number): string | undefined {
  return tlvTagInfo(tag, parentTag)?.name;
}
