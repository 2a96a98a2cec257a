; inherits: typescript
; Tags for TSX: TypeScript's, plus JSX components used as references.

; == references and context ==

(jsx_opening_element name: (identifier) @name.reference.class)
(jsx_self_closing_element name: (identifier) @name.reference.class)
